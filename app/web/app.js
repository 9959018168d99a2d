// The wordvec page: plain browser JavaScript that calls this server's JSON
// API. No framework and no build step; everything the page needs is here.
"use strict";

const POLL_MS = 700;
const AUTOCOMPLETE_DELAY_MS = 150;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const byId = (id) => document.getElementById(id);

// ---- talking to the API -------------------------------------------------

class ProblemError extends Error {
  constructor(message, status, suggestions) {
    super(message);
    this.status = status;
    this.suggestions = suggestions || [];
  }
}

// GET or POST `path` and return the parsed JSON body. Any answer other than
// 2xx becomes a ProblemError carrying the problem's `detail`, which is
// written for people and shown as it is.
async function callApi(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (networkError) {
    throw new ProblemError(
      "The server could not be reached; check that it is running and reload.", 0);
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail
      ? body.detail
      : `The server answered ${response.status} ${response.statusText}.`;
    throw new ProblemError(detail, response.status, body && body.suggestions);
  }
  return body;
}

function query(path, params) {
  return callApi(`${path}?${new URLSearchParams(params)}`);
}

function authHeaders() {
  const key = byId("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// ---- small DOM helpers --------------------------------------------------

function showError(id, error) {
  const target = byId(id);
  target.replaceChildren(document.createTextNode(error.message));
  if (error.suggestions && error.suggestions.length) {
    target.append(" Try: ");
    error.suggestions.forEach((word, i) => {
      if (i) target.append(", ");
      target.append(wordButton(word));
    });
  }
  target.hidden = false;
}

function clearError(id) {
  const target = byId(id);
  target.hidden = true;
  target.textContent = "";
}

function wordButton(word) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "word";
  button.textContent = word;
  button.addEventListener("click", () => searchFor(word));
  return button;
}

// A ranked list of words and scores, each with a bar for the score.
function renderNeighbours(list, neighbours) {
  list.replaceChildren(...neighbours.map(({ word, score }) => {
    const item = document.createElement("li");
    const bar = document.createElement("meter");
    bar.min = -1;
    bar.max = 1;
    bar.value = score;
    const value = document.createElement("span");
    value.className = "score";
    value.textContent = score.toFixed(3);
    item.append(wordButton(word), bar, value);
    return item;
  }));
}

// ---- search, autocomplete and the plot ----------------------------------

let autocompleteTimer = null;
let autocompleteSeq = 0;

function scheduleAutocomplete() {
  clearTimeout(autocompleteTimer);
  autocompleteTimer = setTimeout(fillAutocomplete, AUTOCOMPLETE_DELAY_MS);
}

async function fillAutocomplete() {
  const prefix = byId("search-word").value.trim();
  const options = byId("vocabulary-options");
  if (!prefix) {
    options.replaceChildren();
    return;
  }
  // Answers can arrive out of order; only the latest request may write.
  const seq = ++autocompleteSeq;
  try {
    const answer = await query("/vocabulary", { prefix, limit: 10 });
    if (seq !== autocompleteSeq) return;
    options.replaceChildren(...answer.words.map(({ word }) => {
      const option = document.createElement("option");
      option.value = word;
      return option;
    }));
  } catch (error) {
    // Suggestions are a convenience; the search itself reports problems.
    console.warn("autocomplete failed:", error.message);
  }
}

function searchFor(word) {
  byId("search-word").value = word;
  runSearch();
  byId("search-panel").scrollIntoView({ behavior: "smooth" });
}

async function runSearch() {
  const word = byId("search-word").value.trim();
  const k = byId("search-k").value || "10";
  clearError("search-error");
  byId("neighbours").replaceChildren();
  byId("plot-figure").hidden = true;
  if (!word) return;
  try {
    const answer = await query("/similar", { word, k });
    renderNeighbours(byId("neighbours"), answer.neighbours);
    await drawPlot(answer);
  } catch (error) {
    showError("search-error", error);
  }
}

async function drawPlot(answer) {
  const words = [answer.word, ...answer.neighbours.map((n) => n.word)];
  const answers = await Promise.all(
    words.map((w) => callApi(`/vectors/${encodeURIComponent(w)}`)));
  const points = projectTo2d(answers.map((a) => a.vector));
  const scores = new Map(answer.neighbours.map((n) => [n.word, n.score]));
  const svg = plotSvg(words, points, scores);
  byId("plot").replaceChildren(svg);
  byId("plot-caption").textContent =
    `“${answer.word}” and its ${answer.neighbours.length} nearest words, ` +
    `placed by the first two principal components of their vectors ` +
    `(model ${answer.model_version}).`;
  byId("plot-figure").hidden = false;
  // Text can be measured only once it is displayed.
  separateLabels(svg);
}

// Principal component analysis of the rows of `vectors` (n rows of d
// numbers); returns n [x, y] pairs. With n far below d, the top
// eigenvectors of the n x n Gram matrix of the centred rows give the same
// coordinates as those of the d x d covariance, for much less work.
function projectTo2d(vectors) {
  const n = vectors.length;
  const d = vectors[0].length;
  const mean = new Array(d).fill(0);
  for (const row of vectors) row.forEach((v, j) => { mean[j] += v / n; });
  const centred = vectors.map((row) => row.map((v, j) => v - mean[j]));
  const gram = centred.map((a) => centred.map((b) => dot(a, b)));
  const first = topEigenvector(gram);
  deflate(gram, first);
  const second = topEigenvector(gram);
  const scale1 = Math.sqrt(Math.max(first.value, 0));
  const scale2 = Math.sqrt(Math.max(second.value, 0));
  return first.vector.map((u, i) => [u * scale1, second.vector[i] * scale2]);
}

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

// Power iteration on a symmetric positive semi-definite matrix. The start
// vector is fixed, so the same words always give the same picture.
function topEigenvector(matrix) {
  const n = matrix.length;
  let vector = Array.from({ length: n }, (_, i) => 1 + i / n);
  let value = 0;
  for (let step = 0; step < 300; step++) {
    const next = matrix.map((row) => dot(row, vector));
    const norm = Math.sqrt(dot(next, next));
    if (norm < 1e-12) break;
    vector = next.map((v) => v / norm);
    value = norm;
  }
  const length = Math.sqrt(dot(vector, vector)) || 1;
  return { vector: vector.map((v) => v / length), value };
}

// Remove a found component so that the next power iteration finds the next.
function deflate(matrix, { vector, value }) {
  for (let i = 0; i < matrix.length; i++) {
    for (let j = 0; j < matrix.length; j++) {
      matrix[i][j] -= value * vector[i] * vector[j];
    }
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT = { width: 520, height: 380, margin: 48 };

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  return element;
}

function plotSvg(words, points, scores) {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${PLOT.width} ${PLOT.height}`,
    role: "img",
    "aria-label": `map of ${words[0]} and its neighbours`,
  });
  const place = fitToBox(points);
  const groups = points.map((point, i) => {
    const [x, y] = place(point);
    const group = svgElement("g", { class: i === 0 ? "point query" : "point" });
    const dotShape = svgElement("circle", { cx: x, cy: y, r: i === 0 ? 7 : 5 });
    const label = svgElement("text", { x: x + 9, y: y + 4 });
    label.textContent = words[i];
    const tip = svgElement("title", {});
    tip.textContent = i === 0
      ? `${words[i]} (the query)`
      : `${words[i]}: cosine ${scores.get(words[i]).toFixed(3)}`;
    group.append(tip, dotShape, label);
    if (i > 0) group.addEventListener("click", () => searchFor(words[i]));
    return group;
  });
  // SVG paints in document order: the query word goes last, so that close
  // neighbours never hide it.
  svg.append(...groups.slice(1), groups[0]);
  return svg;
}

// Points close together (small models put a whole topic on one spot) would
// print their words over each other. Taking the labels from the top down,
// each one moves down until it clears the labels already placed, and a thin
// line joins a moved label to its point. The drawing grows to fit.
function separateLabels(svg) {
  const gap = 1;
  const labels = [...svg.querySelectorAll("g.point text")]
    .map((text) => ({ text, box: text.getBBox() }))
    .sort((a, b) => a.box.y - b.box.y || a.box.x - b.box.x);
  const placed = [];
  for (const label of labels) {
    const { box } = label;
    let shift = 0;
    for (let tries = 0; tries < labels.length; tries++) {
      const top = box.y + shift;
      const blocker = placed.find((other) =>
        box.x < other.x + other.width && other.x < box.x + box.width &&
        top < other.y + other.height + gap && other.y < top + box.height + gap);
      if (!blocker) break;
      shift = blocker.y + blocker.height + gap - box.y;
    }
    if (shift > 0) {
      label.text.setAttribute("y", Number(label.text.getAttribute("y")) + shift);
      const dot = label.text.parentNode.querySelector("circle");
      const leader = svgElement("line", {
        class: "leader",
        x1: dot.getAttribute("cx"),
        y1: dot.getAttribute("cy"),
        x2: box.x - 2,
        y2: box.y + shift + box.height / 2,
      });
      label.text.parentNode.insertBefore(leader, label.text);
    }
    placed.push({ x: box.x, y: box.y + shift, width: box.width, height: box.height });
  }
  const bottom = Math.max(PLOT.height, ...placed.map((b) => b.y + b.height + 4));
  svg.setAttribute("viewBox", `0 0 ${PLOT.width} ${bottom}`);
}

// Return a function mapping [x, y] data points into the plot, keeping the
// aspect ratio so that distances on screen compare fairly.
function fitToBox(points) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [minX, maxX, minY, maxY] =
    [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(maxX - minX, maxY - minY) || 1;
  const inner = Math.min(PLOT.width, PLOT.height) - 2 * PLOT.margin;
  const scale = inner / span;
  const offsetX = (PLOT.width - (maxX - minX) * scale) / 2;
  const offsetY = (PLOT.height - (maxY - minY) * scale) / 2;
  return ([x, y]) => [
    offsetX + (x - minX) * scale,
    PLOT.height - (offsetY + (y - minY) * scale),
  ];
}

// ---- analogy and similarity ---------------------------------------------

async function runAnalogy() {
  const params = {
    a: byId("analogy-a").value.trim(),
    b: byId("analogy-b").value.trim(),
    c: byId("analogy-c").value.trim(),
  };
  clearError("analogy-error");
  byId("analogy-results").replaceChildren();
  try {
    const answer = await query("/analogy", params);
    renderNeighbours(byId("analogy-results"), answer.neighbours);
  } catch (error) {
    showError("analogy-error", error);
  }
}

async function runSimilarity() {
  const a = byId("similarity-a").value.trim();
  const b = byId("similarity-b").value.trim();
  const result = byId("similarity-result");
  clearError("similarity-error");
  result.hidden = true;
  try {
    const answer = await query("/similarity", { a, b });
    result.textContent =
      `Cosine similarity of “${answer.a}” and “${answer.b}”: ` +
      `${answer.score.toFixed(3)} (−1 opposite, 0 unrelated, 1 same direction).`;
    result.hidden = false;
  } catch (error) {
    showError("similarity-error", error);
  }
}

// ---- fine-tune jobs and versions ----------------------------------------

async function startFinetune() {
  const file = byId("finetune-file").files[0];
  const epochs = byId("finetune-epochs").value;
  clearError("finetune-error");
  if (!file) {
    showError("finetune-error", new Error("Choose a text file to fine-tune on."));
    return;
  }
  const form = new FormData();
  form.append("file", file);
  if (epochs) form.append("epochs", epochs);
  try {
    const job = await callApi("/finetune", {
      method: "POST", body: form, headers: authHeaders(),
    });
    showJob(job);
    await followJob(job.id);
  } catch (error) {
    showError("finetune-error", error);
  }
}

async function followJob(jobId) {
  for (;;) {
    const job = await callApi(`/jobs/${encodeURIComponent(jobId)}`);
    showJob(job);
    if (FINISHED.has(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  await refreshModels();
}

function showJob(job) {
  byId("job").hidden = false;
  byId("job").dataset.status = job.status;
  byId("job-id").textContent = job.id;
  byId("job-status").textContent = job.status;
  const progress = job.progress || {};
  byId("job-stage").textContent = progress.stage ? `(${progress.stage})` : "";
  byId("job-progress").value = job.status === "succeeded" ? 1 : progress.fraction || 0;
  byId("job-detail").textContent = jobDetail(job);
}

function jobDetail(job) {
  if (job.status === "succeeded") {
    const served = job.activated ? "now served" : "not activated";
    const words = job.new_word_count ? `, ${job.new_word_count} new words` : "";
    return `Published version ${job.result_version} (${served}${words}).`;
  }
  if (job.status === "failed") return `Failed: ${job.error}`;
  if (job.status === "cancelled") return "Cancelled.";
  const progress = job.progress || {};
  return progress.eta_seconds != null
    ? `About ${Math.ceil(progress.eta_seconds)} s left.`
    : "";
}

async function refreshModels() {
  clearError("models-error");
  try {
    const answer = await callApi("/models");
    byId("served-version").textContent = answer.active_version || "none";
    renderModels(answer);
  } catch (error) {
    showError("models-error", error);
  }
}

function renderModels({ active_version: active, models }) {
  const activeIndex = models.findIndex((m) => m.version === active);
  const rows = models.map((model, i) => {
    const row = document.createElement("tr");
    row.dataset.version = model.version;
    const cells = [
      model.version,
      model.source || "",
      model.vocab_size.toLocaleString("en"),
      model.created_at ? model.created_at.replace("T", " ").slice(0, 19) : "",
    ].map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    });
    const action = document.createElement("td");
    if (model.version === active) {
      action.textContent = "serving";
      row.className = "active";
    } else {
      const button = document.createElement("button");
      button.type = "button";
      // Models are listed oldest first: one before the active is a rollback.
      button.textContent = activeIndex >= 0 && i < activeIndex ? "Roll back" : "Activate";
      button.addEventListener("click", () => activate(model.version));
      action.append(button);
    }
    row.append(...cells, action);
    return row;
  });
  byId("models").tBodies[0].replaceChildren(...rows);
}

async function activate(version) {
  clearError("models-error");
  try {
    await callApi(`/models/${encodeURIComponent(version)}/activate`, {
      method: "POST", headers: authHeaders(),
    });
  } catch (error) {
    showError("models-error", error);
    return;
  }
  await refreshModels();
}

// ---- wiring -------------------------------------------------------------

function onSubmit(formId, handler) {
  byId(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    handler();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  byId("search-word").addEventListener("input", scheduleAutocomplete);
  onSubmit("search-form", runSearch);
  onSubmit("analogy-form", runAnalogy);
  onSubmit("similarity-form", runSimilarity);
  onSubmit("finetune-form", startFinetune);
  refreshModels();
});
