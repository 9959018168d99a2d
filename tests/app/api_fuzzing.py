"""Schema-driven fuzzing of the HTTP API with schemathesis, shared by the
in-suite test (tests/app/test_api_fuzz.py, a small budget) and the longer
run (benchmarks/fuzz_api.py).

The app runs in-process over a real data directory: the active version
"v1" and three spares, all holding the structured test bundle, with the
API key configured and sent, so the state-changing endpoints run too
(and schemathesis's `ignored_auth` check resends their successful cases
without the key and with a wrong one, expecting 401). Word parameters
(query, path and body) become vocabulary words three times in four, the
three words of an analogy a triple of distinct vocabulary words half the
time, and `k`/`limit` a small count half the time, so most cases get past
"word not in vocabulary" and "k above max_k" to the search. Uploads to
POST /finetune (a multipart file, a text/plain or a gzip body) become a
few dozen vocabulary words half the time, enough tokens to be accepted.

Version path parameters are seeded by method so that fuzzing never takes
the served model away: activations move "active" between v1 and spare-1,
deletions draw spare-2 and spare-3 (and whatever names the fuzzer makes
up, which do not exist). The registry refuses to delete the active
version in any case. Job ids become, three times in four, the id of a
real job: one of those fine-tunes submitted before fuzzing starts (one of
them cancelled already) or whichever job is queued at the time, so reads
find a job and cancels find one to cancel.
"""

import gzip
import json
import re
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.transport.serialization import Binary

from app.core.config import Settings
from app.jobs.store import JOB_ID_PATTERN, JobStore, open_job_store
from app.main import create_app
from app.registry import VERSION_PATTERN, ModelRegistry
from tests.app.conftest import WORD_PARTS, add_version

API_KEY = "fuzz-key"
SPARE_VERSIONS = ("spare-1", "spare-2", "spare-3")
ALL_VERSIONS = ("v1", *SPARE_VERSIONS)
# Version names seeded into path parameters, by method: activations move
# "active" between v1 and spare-1, deletions take the other spares, so the
# served model is never one being deleted.
SEEDED_VERSIONS = {
    "POST": ("v1", "spare-1"),
    "DELETE": ("spare-2", "spare-3"),
}
COUNT_FIELDS = frozenset({"k", "limit"})
# Query and path parameters that name one vocabulary word.
WORD_FIELDS = frozenset({"word", "a", "b", "c", "prefix"})
# Body fields that list vocabulary words (POST /similar).
WORD_LIST_FIELDS = ("words", "positive", "negative")
VOCABULARY = sorted(WORD_PARTS)
ANALOGY_FIELDS = ("a", "b", "c")
JOB_ID = re.compile(JOB_ID_PATTERN)
# Fine-tunes submitted before fuzzing, so job ids can name real jobs.
SEEDED_JOBS = 4
# Vocabulary words an upload is made of: past min_upload_tokens (5), and
# small, so accepted uploads cost the fuzzer little.
UPLOAD_WORDS = st.lists(st.sampled_from(VOCABULARY), min_size=5, max_size=40).map(
    " ".join
)
# Statuses a schema-valid request may still get: 404 for a word or version
# that does not exist, 409/429 for state (active version, queue full) and
# 422 for the server's limits, which are settings the schema cannot state
# (max_k, max_word_length, max_batch, upload tokens).
ACCEPTED_STATUSES = ["2xx", "401", "404", "409", "422", "429"]


def build_data_dir(root: Path) -> Path:
    """Write a data directory under `root` with "v1" active and the spares."""
    registry = ModelRegistry(root / "data")
    add_version(registry, "v1", activate=True)
    for version in SPARE_VERSIONS:
        add_version(registry, version)
    return registry.data_dir


def fuzz_app(data_dir: Path) -> FastAPI:
    """Return the app over `data_dir` with an API key and small limits."""
    settings = Settings(
        data_dir=data_dir,
        api_key=API_KEY,
        min_upload_tokens=5,
        reload_interval=0.2,
        # Room for the fine-tunes a long run accepts, so most seeded uploads
        # reach the job table; a run of thousands still meets the 429s.
        max_queued_jobs=100,
        finetunes_per_hour=200,
    )
    return create_app(settings)


def submit_jobs(data_dir: Path, count: int) -> list[str]:
    """Queue `count` real fine-tunes in `data_dir` through the app (no worker
    runs them, so they stay queued) and cancel the first; return their ids."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    text = " ".join(VOCABULARY).encode()
    ids = []
    with TestClient(fuzz_app(data_dir)) as client:
        for _ in range(count):
            response = client.post(
                "/finetune", files={"file": ("seed.txt", text)}, headers=headers
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        cancelled = client.post(f"/jobs/{ids[0]}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
    return ids


def fuzz_target(root: Path) -> Any:
    """Build the data directory under `root`, queue a few real jobs in it and
    return the schemathesis schema of the app serving it."""
    data_dir = build_data_dir(root)
    job_ids = submit_jobs(data_dir, SEEDED_JOBS)
    return fuzz_schema(fuzz_app(data_dir), open_job_store(data_dir), job_ids)


def fuzz_schema(app: FastAPI, store: JobStore, job_ids: list[str]) -> Any:
    """Return the schemathesis schema of `app`, with every check enabled,
    the API key sent, word parameters and uploads seeded from the vocabulary
    and job ids from `job_ids` and the jobs queued in `store`."""
    config = SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {API_KEY}"},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES},
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema.hook("flatmap_query")(_seed_query)
    schema.hook("flatmap_path_parameters")(_path_seeder(store, job_ids))
    schema.hook("flatmap_body")(_seed_body)
    return schema


def _word_or(value: Any) -> st.SearchStrategy[Any]:
    # Only a non-empty string is replaced: an empty or non-string value may
    # be the fault a negative case was built around, and replacing it would
    # turn the case valid behind the checks' back.
    if not isinstance(value, str) or not value:
        return st.just(value)
    return st.one_of(st.just(value), *[st.sampled_from(VOCABULARY)] * 3)


def _count_or(value: Any) -> st.SearchStrategy[Any]:
    # A valid k or limit is often far above the server's max_k (a 422);
    # a small one half the time lets the case reach the search.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return st.one_of(st.just(value), st.integers(1, 20))
    return st.just(value)


def _seed_fields(values: Any, names: frozenset[str]) -> st.SearchStrategy[Any]:
    if not isinstance(values, dict):
        return st.just(values)
    seeded = {}
    for name, value in values.items():
        if name in names:
            seeded[name] = _word_or(value)
        elif name in COUNT_FIELDS:
            seeded[name] = _count_or(value)
        else:
            seeded[name] = st.just(value)
    return st.fixed_dictionaries(seeded)


def _seed_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    seeded = _seed_fields(query, WORD_FIELDS)
    if not isinstance(query, dict):
        return seeded
    triple = [query.get(name) for name in ANALOGY_FIELDS]
    if not all(isinstance(word, str) and word for word in triple):
        return seeded
    # Three independent draws rarely give three distinct known words, which
    # the analogy needs to answer 200; a whole triple does, half the time.
    distinct = st.lists(
        st.sampled_from(VOCABULARY), min_size=3, max_size=3, unique=True
    )
    triples = distinct.map(
        lambda words: {**query, **dict(zip(ANALOGY_FIELDS, words, strict=True))}
    )
    return st.one_of(seeded, triples)


def _path_seeder(store: JobStore, job_ids: list[str]) -> Any:
    def seed_path(context: Any, path: Any) -> st.SearchStrategy[Any]:
        if not isinstance(path, dict):
            return st.just(path)
        version = path.get("version")
        if isinstance(version, str) and VERSION_PATTERN.fullmatch(version):
            method = context.operation.method.upper() if context.operation else "GET"
            names = SEEDED_VERSIONS.get(method, ALL_VERSIONS)
            return _replace(path, "version", st.sampled_from(names)) | st.just(path)
        job_id = path.get("job_id")
        if isinstance(job_id, str) and JOB_ID.fullmatch(job_id):
            known = st.integers(0, 1000).map(real_job)
            return st.one_of(st.just(path), *[_replace(path, "job_id", known)] * 3)
        return _seed_fields(path, WORD_FIELDS)

    def real_job(draw: int) -> str:
        # The jobs queued now join the seeded ones, so that cancels find a
        # job to cancel for as long as the run adds some. Hypothesis draws
        # only the number: a choice drawn from the changing list itself
        # would make it see inconsistent data generation.
        queued = [job.id for job in store.recent(status="queued", limit=20)]
        candidates = [*job_ids, *queued]
        return candidates[draw % len(candidates)]

    return seed_path


def _replace(
    values: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    fixed = {k: st.just(v) for k, v in values.items() if k != name}
    return st.fixed_dictionaries({**fixed, name: strategy})


def _upload_or(value: Any) -> st.SearchStrategy[Any]:
    # A file part or a gzip body is a Binary, a text/plain body a str; each
    # becomes vocabulary text of the same kind, so its media type still fits.
    if isinstance(value, Binary):
        return st.one_of(
            st.just(value), UPLOAD_WORDS.map(lambda text: Binary(text.encode()))
        )
    if isinstance(value, str):
        return st.one_of(st.just(value), UPLOAD_WORDS)
    return st.just(value)


def _seed_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if isinstance(body, Binary):
        # Only POST /finetune takes a bare binary body: application/gzip.
        return st.one_of(
            st.just(body),
            UPLOAD_WORDS.map(lambda text: Binary(gzip.compress(text.encode()))),
        )
    if isinstance(body, str):
        return _upload_or(body)
    if not isinstance(body, dict):
        return st.just(body)
    seeded: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in body.items():
        if name == "file":
            seeded[name] = _upload_or(value)
        elif name in WORD_LIST_FIELDS and isinstance(value, list):
            seeded[name] = st.tuples(*[_word_or(item) for item in value]).map(list)
        elif name == "pairs" and isinstance(value, list):
            seeded[name] = st.tuples(
                *[_seed_fields(pair, frozenset({"a", "b"})) for pair in value]
            ).map(list)
        elif name in COUNT_FIELDS:
            seeded[name] = _count_or(value)
        else:
            seeded[name] = st.just(value)
    return st.fixed_dictionaries(seeded)


def operations() -> list[tuple[str, str]]:
    """Return (method, path) of every operation in the app's OpenAPI document."""
    document = create_app(Settings()).openapi()
    return [
        (method.upper(), path)
        for path, methods in document["paths"].items()
        for method in methods
    ]


def case_strategy(schema: Any, method: str, path: str) -> st.SearchStrategy[Any]:
    """Return cases for one operation: valid and invalid requests, half each."""
    operation = schema[path][method]
    return st.sampled_from(list(GenerationMode)).flatmap(
        lambda mode: operation.as_strategy(generation_mode=mode, hooks=schema.hooks)
    )


def check_response(case: Any) -> Any:
    """Send `case` and run every check on the answer; also parse a JSON body
    strictly (NaN and infinity refused). Returns the response."""
    response = case.call_and_validate()
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if "json" in content_type and response.content:
        json.loads(response.text, parse_constant=_refuse_constant)
    return response


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the JSON body holds {name}, which JSON does not allow")
