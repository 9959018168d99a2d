// Native word2vec kernel: skip-gram and CBOW with negative sampling
// (Mikolov et al. 2013), optionally with fastText character n-grams
// (Bojanowski et al. 2017).
//
// The Python side (training/kernels.py) owns every array; this module keeps
// raw pointers into them (and references so they outlive the kernel) and
// updates the parameters in place. A chunk of the encoded corpus (int32 token
// ids, -1 ends a sentence) is cut into blocks at sentence ends; worker threads
// take blocks from an atomic counter and update the shared parameters without
// locks (Hogwild, Recht et al. 2011), with the GIL released.
//
// Only pybind11 is used (no ATen), so the module loads without libtorch.
//
// Quality against gensim: the update rules match gensim's (CBOW with the mean
// of the context vectors, full gradient back to each context word). A gap of
// 0.015 WordSim-353 on data/corpus came from the learning-rate schedule, not
// from this file: gensim decays the rate by sentences read when given
// total_examples, which on that corpus keeps it about 5% higher per word.
// Given the same schedule, scores and vector norms agree within the spread of
// three seeds (see benchmarks/train_vs_gensim.py --gensim-decay).

#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define WORDVEC_AVX2 1
#endif

namespace py = pybind11;

namespace {

// Scores beyond +-kMaxScore saturate the sigmoid to 0 or 1 within float
// precision that matters for SGD; the word2vec C tool uses the same bound.
constexpr float kMaxScore = 6.0f;
constexpr int kTableSize = 1024;
// Tokens per work block: small enough to balance two threads on a chunk of
// ~1M tokens, large enough that the atomic counter is never contended.
constexpr int64_t kBlockTokens = 1 << 14;
// The loss is measured on every kLossEvery-th centre word only: it feeds the
// progress bar, and logf on every example costs several percent.
constexpr int kLossEvery = 8;
// How many examples ahead the rows are prefetched (measured: 2-4 is best).
constexpr int kPrefetchAhead = 2;

// ---------------------------------------------------------------------------
// Random numbers: xorshift64* (Vigna 2016), one generator per block so a
// block's draws do not depend on which thread runs it.

struct Rng {
  uint64_t state;

  explicit Rng(uint64_t seed) : state(mix(seed) | 1) {}

  static uint64_t mix(uint64_t x) {  // splitmix64 finaliser
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }

  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }

  // Uniform integer in [0, n) from the high bits (multiply-shift, no modulo).
  uint32_t below(uint32_t n) {
    return static_cast<uint32_t>(((next() >> 32) * n) >> 32);
  }

  // Uniform float in [0, 1) with 24 random bits.
  float uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }
};

// ---------------------------------------------------------------------------
// Noise distribution as an alias table (Walker 1977, Vose 1991): one draw is
// one random number and one cache line, whatever the vocabulary size.

struct AliasEntry {
  float threshold;  // keep this slot's own word when uniform < threshold
  int32_t alias;
};

std::vector<AliasEntry> build_alias_table(const double* probs, int64_t n) {
  std::vector<AliasEntry> table(n);
  std::vector<double> scaled(n);
  std::vector<int32_t> small, large;
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += probs[i];
  for (int64_t i = 0; i < n; ++i) {
    scaled[i] = probs[i] / total * static_cast<double>(n);
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<int32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    int32_t s = small.back(), l = large.back();
    small.pop_back();
    table[s] = {static_cast<float>(scaled[s]), l};
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding error.
  for (int32_t i : small) table[i] = {1.0f, i};
  for (int32_t i : large) table[i] = {1.0f, i};
  return table;
}

inline int32_t draw_noise(const std::vector<AliasEntry>& table, Rng& rng) {
  uint64_t r = rng.next();
  uint32_t slot = static_cast<uint32_t>(((r >> 32) * table.size()) >> 32);
  float u = static_cast<float>(r & 0xFFFFFF) * 0x1.0p-24f;
  const AliasEntry& e = table[slot];
  return u < e.threshold ? static_cast<int32_t>(slot) : e.alias;
}

// ---------------------------------------------------------------------------
// Sigmoid and log-sigmoid lookup tables over [-kMaxScore, kMaxScore].

struct Tables {
  float sigmoid[kTableSize + 1];
  float log_sigmoid[kTableSize + 1];

  Tables() {
    for (int i = 0; i <= kTableSize; ++i) {
      double x = (2.0 * i / kTableSize - 1.0) * kMaxScore;
      sigmoid[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
      log_sigmoid[i] = static_cast<float>(-std::log1p(std::exp(-x)));
    }
  }

  static int slot(float score) {
    return static_cast<int>((score + kMaxScore) * (kTableSize / (2 * kMaxScore)));
  }

  // log sigma(score), exact enough for a progress-bar loss.
  float log_sigma(float score) const {
    if (score <= -kMaxScore) return score;
    if (score >= kMaxScore) return 0.0f;
    return log_sigmoid[slot(score)];
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

// ---------------------------------------------------------------------------
// Dense float loops. dim is small (50-300), so the cost is in these loops and
// in cache misses on the rows they touch.

inline float dot(const float* a, const float* b, int n) {
  int i = 0;
  float sum = 0.0f;
#ifdef WORDVEC_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8),
                           acc1);
  }
  for (; i + 8 <= n; i += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  sum = _mm_cvtss_f32(s);
#endif
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += alpha * x
inline void axpy(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// One negative-sampling target: grad += g * out; out += g * h, in one pass so
// the output row is loaded once.
inline void update_target(float g, const float* __restrict h, float* __restrict out,
                          float* __restrict grad, int n) {
  for (int i = 0; i < n; ++i) {
    float o = out[i];
    grad[i] += g * o;
    out[i] = o + g * h[i];
  }
}

// ---------------------------------------------------------------------------

struct ChunkTotals {
  int64_t raw_words = 0;
  int64_t trained_words = 0;
  int64_t examples = 0;
  double loss_sum = 0.0;
  int64_t loss_count = 0;

  void add(const ChunkTotals& o) {
    raw_words += o.raw_words;
    trained_words += o.trained_words;
    examples += o.examples;
    loss_sum += o.loss_sum;
    loss_count += o.loss_count;
  }
};

struct Buffer {
  py::buffer owner;
  void* data;
  std::vector<py::ssize_t> shape;
};

template <typename T>
Buffer checked_buffer(py::buffer b, const char* name, int ndim, bool writable) {
  py::buffer_info info = b.request(writable);
  if (!info.item_type_is_equivalent_to<T>() || info.ndim != ndim)
    throw std::invalid_argument(std::string(name) + ": wrong dtype or ndim");
  py::ssize_t expected = info.itemsize;
  for (int d = ndim - 1; d >= 0; --d) {
    if (info.shape[d] > 1 && info.strides[d] != expected)
      throw std::invalid_argument(std::string(name) + ": must be C-contiguous");
    expected *= info.shape[d];
  }
  return {b, info.ptr, info.shape};
}

class Word2VecKernel {
 public:
  Word2VecKernel(py::buffer input_vectors, py::buffer output_vectors,
                 py::buffer subword_vectors, py::buffer subword_offsets,
                 py::buffer subword_rows, py::buffer keep_probabilities,
                 py::buffer noise_distribution, bool skip_gram, int window,
                 int negative, int threads, uint64_t seed)
      : input_(checked_buffer<float>(input_vectors, "input_vectors", 2, true)),
        output_(checked_buffer<float>(output_vectors, "output_vectors", 2, true)),
        subword_(checked_buffer<float>(subword_vectors, "subword_vectors", 2, true)),
        offsets_(checked_buffer<int64_t>(subword_offsets, "subword_offsets", 1, false)),
        rows_(checked_buffer<int32_t>(subword_rows, "subword_rows", 1, false)),
        keep_(checked_buffer<float>(keep_probabilities, "keep_probabilities", 1, false)),
        skip_gram_(skip_gram),
        window_(window),
        negative_(negative),
        threads_(std::max(1, threads)),
        seed_(seed) {
    vocab_size_ = input_.shape[0];
    dim_ = static_cast<int>(input_.shape[1]);
    Buffer noise = checked_buffer<double>(noise_distribution, "noise_distribution", 1, false);
    if (output_.shape[0] != vocab_size_ || output_.shape[1] != dim_ ||
        keep_.shape[0] != vocab_size_ || noise.shape[0] != vocab_size_)
      throw std::invalid_argument("parameter shapes disagree with the vocabulary");
    use_subwords_ = subword_.shape[0] > 0;
    if (use_subwords_ &&
        (offsets_.shape[0] != vocab_size_ + 1 || subword_.shape[1] != dim_))
      throw std::invalid_argument("subword tables disagree with the vocabulary");
    noise_ = build_alias_table(static_cast<const double*>(noise.data), vocab_size_);
  }

  py::tuple train_chunk(py::buffer token_ids, float lr_start, float lr_end) {
    Buffer tokens = checked_buffer<int32_t>(token_ids, "token_ids", 1, false);
    const int32_t* ids = static_cast<const int32_t*>(tokens.data);
    int64_t n = tokens.shape[0];
    uint64_t chunk = chunk_counter_++;
    ChunkTotals totals;
    {
      py::gil_scoped_release release;
      std::vector<int64_t> starts = block_starts(ids, n);
      totals = run_blocks(ids, n, starts, chunk, lr_start, lr_end);
    }
    return py::make_tuple(totals.raw_words, totals.trained_words, totals.examples,
                          totals.loss_sum, totals.loss_count);
  }

  // n draws from the noise distribution (for tests of the sampler).
  py::list sample_noise(int64_t n, uint64_t seed) const {
    Rng rng(seed);
    py::list out;
    for (int64_t i = 0; i < n; ++i) out.append(draw_noise(noise_, rng));
    return out;
  }

 private:
  struct Worker;

  // Block boundaries fall just after a sentence end, so no window crosses one.
  std::vector<int64_t> block_starts(const int32_t* ids, int64_t n) const {
    std::vector<int64_t> starts{0};
    int64_t pos = kBlockTokens;
    while (pos < n) {
      while (pos < n && ids[pos - 1] >= 0) ++pos;
      if (pos < n) starts.push_back(pos);
      pos += kBlockTokens;
    }
    starts.push_back(n);
    return starts;
  }

  ChunkTotals run_blocks(const int32_t* ids, int64_t n,
                         const std::vector<int64_t>& starts, uint64_t chunk,
                         float lr_start, float lr_end);

  Buffer input_, output_, subword_, offsets_, rows_, keep_;
  std::vector<AliasEntry> noise_;
  int64_t vocab_size_;
  int dim_;
  bool use_subwords_;
  bool skip_gram_;
  int window_, negative_, threads_;
  uint64_t seed_;
  uint64_t chunk_counter_ = 0;
};

// One thread's working state: sentence buffer, hidden vector and gradient.
struct Word2VecKernel::Worker {
  const Word2VecKernel& k;
  const Tables& t = tables();
  float* input;
  float* output;
  float* subword;
  const int64_t* offsets;
  const int32_t* rows;
  const float* keep;
  int dim;
  std::vector<int32_t> sentence, reach, pair_centre, pair_context, noise;
  std::vector<float> hidden, grad;
  ChunkTotals totals;
  int64_t centres_seen = 0;

  explicit Worker(const Word2VecKernel& kernel)
      : k(kernel),
        input(static_cast<float*>(kernel.input_.data)),
        output(static_cast<float*>(kernel.output_.data)),
        subword(static_cast<float*>(kernel.subword_.data)),
        offsets(static_cast<const int64_t*>(kernel.offsets_.data)),
        rows(static_cast<const int32_t*>(kernel.rows_.data)),
        keep(static_cast<const float*>(kernel.keep_.data)),
        dim(kernel.dim_),
        hidden(kernel.dim_),
        grad(kernel.dim_) {}

  // Train on one target word (label 1 for the context/centre word, 0 for a
  // noise word): SGD on log sigma(+-h.out), the gradient for h added to grad.
  // Returns log sigma of the signed score for the loss.
  float train_target(const float* h, int32_t target, float label, float lr) {
    float* out = output + static_cast<int64_t>(target) * dim;
    float score = dot(h, out, dim);
    float g;
    if (score >= kMaxScore) {
      g = label - 1.0f;
    } else if (score <= -kMaxScore) {
      g = label;
    } else {
      g = label - t.sigmoid[Tables::slot(score)];
    }
    update_target(g * lr, h, out, grad.data(), dim);
    return t.log_sigma(label > 0.5f ? score : -score);
  }

  // hidden += the word's row and its n-gram rows; returns how many rows.
  int add_word_rows(int32_t word, float* h) {
    axpy(1.0f, input + static_cast<int64_t>(word) * dim, h, dim);
    if (!k.use_subwords_) return 1;
    for (int64_t r = offsets[word]; r < offsets[word + 1]; ++r)
      axpy(1.0f, subword + static_cast<int64_t>(rows[r]) * dim, h, dim);
    return 1 + static_cast<int>(offsets[word + 1] - offsets[word]);
  }

  // Every row of the word receives the full gradient of the mean, as in
  // word2vec's CBOW and fastText; dividing by the row count slows learning.
  void apply_to_word_rows(int32_t word, const float* g) {
    axpy(1.0f, g, input + static_cast<int64_t>(word) * dim, dim);
    if (!k.use_subwords_) return;
    for (int64_t r = offsets[word]; r < offsets[word + 1]; ++r)
      axpy(1.0f, g, subword + static_cast<int64_t>(rows[r]) * dim, dim);
  }

  // Rows are fetched kPrefetchAhead examples before they are used: a row of
  // a large vocabulary is usually not in cache, and the random reads of the
  // output rows, not the arithmetic, bound the speed.
  void prefetch_row(const float* row) const {
    const char* p = reinterpret_cast<const char*>(row);
    for (int64_t off = 0; off < static_cast<int64_t>(dim) * 4; off += 64)
      __builtin_prefetch(p + off, 1, 3);
  }

  void prefetch_targets(int32_t positive, const int32_t* noise) const {
    prefetch_row(output + static_cast<int64_t>(positive) * dim);
    for (int d = 0; d < k.negative_; ++d)
      prefetch_row(output + static_cast<int64_t>(noise[d]) * dim);
  }

  // Draw every random number the sentence needs up front: the shrunk window
  // of each centre word (uniform in 1..window) and the noise words of each
  // example, so the rows of later examples can be prefetched.
  void plan_sentence() {
    int n = static_cast<int>(sentence.size());
    reach.resize(n);
    pair_centre.clear();
    pair_context.clear();
    for (int i = 0; i < n; ++i) {
      reach[i] = 1 + static_cast<int>(rng_.below(static_cast<uint32_t>(k.window_)));
      if (!k.skip_gram_) continue;
      int lo = std::max(0, i - reach[i]), hi = std::min(n - 1, i + reach[i]);
      for (int j = lo; j <= hi; ++j) {
        if (j == i) continue;
        pair_centre.push_back(i);
        pair_context.push_back(sentence[j]);
      }
    }
    size_t examples = k.skip_gram_ ? pair_centre.size() : sentence.size();
    noise.resize(examples * k.negative_ + kPrefetchAhead * k.negative_);
    for (size_t e = 0; e < examples * k.negative_; ++e)
      noise[e] = draw_noise(k.noise_, rng_);
  }

  // Positive target plus its noise words; returns the example's loss.
  float train_example(const float* h, int32_t target, const int32_t* noise_words,
                      float lr) {
    float loss = -train_target(h, target, 1.0f, lr);
    for (int d = 0; d < k.negative_; ++d) {
      if (noise_words[d] == target) continue;
      loss -= train_target(h, noise_words[d], 0.0f, lr);
    }
    return loss;
  }

  void count_example(float loss, bool measure) {
    totals.examples += 1;
    if (measure) {
      totals.loss_sum += loss;
      totals.loss_count += 1;
    }
  }

  // Skip-gram: the centre word's vector predicts each context word.
  void train_skip_gram(float lr) {
    int num_pairs = static_cast<int>(pair_centre.size());
    int current = -1;
    float* h = nullptr;
    bool measure = false;
    for (int p = 0; p < num_pairs; ++p) {
      if (p + kPrefetchAhead < num_pairs) {
        int q = p + kPrefetchAhead;
        prefetch_targets(pair_context[q], &noise[q * k.negative_]);
        prefetch_row(input + static_cast<int64_t>(sentence[pair_centre[q]]) * dim);
      }
      if (pair_centre[p] != current) {
        if (k.use_subwords_ && current >= 0)
          apply_to_word_rows(sentence[current], grad.data());
        current = pair_centre[p];
        h = start_centre(sentence[current]);
        measure = (centres_seen++ % kLossEvery) == 0;
      }
      if (!k.use_subwords_) std::fill(grad.begin(), grad.end(), 0.0f);
      float loss = train_example(h, pair_context[p], &noise[p * k.negative_], lr);
      if (!k.use_subwords_) axpy(1.0f, grad.data(), h, dim);
      count_example(loss, measure);
    }
    if (k.use_subwords_ && current >= 0)
      apply_to_word_rows(sentence[current], grad.data());
  }

  // Without subwords the centre's own row is trained in place, as in the
  // word2vec C tool. With subwords the composed vector is held fixed over
  // the window and the summed gradient applied once at the end (fastText
  // recomposes it for every context word, which costs (1 + n-grams) rows).
  float* start_centre(int32_t centre) {
    if (!k.use_subwords_) return input + static_cast<int64_t>(centre) * dim;
    std::fill(hidden.begin(), hidden.end(), 0.0f);
    float inv = 1.0f / static_cast<float>(add_word_rows(centre, hidden.data()));
    for (float& v : hidden) v *= inv;
    std::fill(grad.begin(), grad.end(), 0.0f);
    return hidden.data();
  }

  void prefetch_cbow(int i) const {
    int n = static_cast<int>(sentence.size());
    prefetch_targets(sentence[i], &noise[i * k.negative_]);
    int lo = std::max(0, i - reach[i]), hi = std::min(n - 1, i + reach[i]);
    for (int j = lo; j <= hi; ++j)
      if (j != i) prefetch_row(input + static_cast<int64_t>(sentence[j]) * dim);
  }

  // CBOW: the mean of the context vectors predicts the centre word.
  void train_cbow(float lr) {
    int n = static_cast<int>(sentence.size());
    for (int i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) prefetch_cbow(i + kPrefetchAhead);
      int lo = std::max(0, i - reach[i]), hi = std::min(n - 1, i + reach[i]);
      std::fill(hidden.begin(), hidden.end(), 0.0f);
      int count = 0;
      for (int j = lo; j <= hi; ++j)
        if (j != i) count += add_word_rows(sentence[j], hidden.data());
      float inv = 1.0f / static_cast<float>(count);
      for (float& v : hidden) v *= inv;
      std::fill(grad.begin(), grad.end(), 0.0f);
      float loss = train_example(hidden.data(), sentence[i], &noise[i * k.negative_], lr);
      for (int j = lo; j <= hi; ++j)
        if (j != i) apply_to_word_rows(sentence[j], grad.data());
      count_example(loss, (centres_seen++ % kLossEvery) == 0);
    }
  }

  void train_sentence(float lr) {
    plan_sentence();
    if (k.skip_gram_)
      train_skip_gram(lr);
    else
      train_cbow(lr);
  }

  void train_block(const int32_t* ids, int64_t begin, int64_t end, int64_t n,
                   float lr_start, float lr_end, uint64_t block_seed) {
    rng_ = Rng(block_seed);
    float lr_step = (lr_end - lr_start) / static_cast<float>(n);
    int64_t pos = begin;
    while (pos < end) {
      float lr = lr_start + lr_step * static_cast<float>(pos);
      sentence.clear();
      for (; pos < end && ids[pos] >= 0; ++pos) {
        int32_t word = ids[pos];
        totals.raw_words += 1;
        // Subsampling of frequent words (Mikolov et al. 2013, section 2.3).
        float p = keep[word];
        if (p >= 1.0f || rng_.uniform() < p) sentence.push_back(word);
      }
      ++pos;  // the sentence end
      totals.trained_words += static_cast<int64_t>(sentence.size());
      if (sentence.size() > 1) train_sentence(lr);
    }
  }

  Rng rng_{0};
};

ChunkTotals Word2VecKernel::run_blocks(const int32_t* ids, int64_t n,
                                       const std::vector<int64_t>& starts,
                                       uint64_t chunk, float lr_start, float lr_end) {
  int64_t num_blocks = static_cast<int64_t>(starts.size()) - 1;
  std::atomic<int64_t> next_block{0};
  int num_threads = static_cast<int>(std::min<int64_t>(threads_, num_blocks));
  std::vector<ChunkTotals> per_thread(std::max(1, num_threads));
  auto work = [&](int thread) {
    Worker worker(*this);
    for (int64_t b; (b = next_block.fetch_add(1)) < num_blocks;) {
      uint64_t block_seed = Rng::mix(seed_ ^ Rng::mix(chunk * 0x100000001B3ULL + b));
      worker.train_block(ids, starts[b], starts[b + 1], n, lr_start, lr_end,
                         block_seed);
    }
    per_thread[thread] = worker.totals;
  };
  if (num_threads <= 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < num_threads; ++t) pool.emplace_back(work, t);
    for (auto& th : pool) th.join();
  }
  ChunkTotals totals;
  for (const auto& p : per_thread) totals.add(p);
  return totals;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Native word2vec training kernel (skip-gram and CBOW, negative sampling)";
  py::class_<Word2VecKernel>(m, "Word2VecKernel")
      .def(py::init<py::buffer, py::buffer, py::buffer, py::buffer, py::buffer,
                    py::buffer, py::buffer, bool, int, int, int, uint64_t>(),
           py::arg("input_vectors"), py::arg("output_vectors"),
           py::arg("subword_vectors"), py::arg("subword_offsets"),
           py::arg("subword_rows"), py::arg("keep_probabilities"),
           py::arg("noise_distribution"), py::arg("skip_gram"), py::arg("window"),
           py::arg("negative"), py::arg("threads"), py::arg("seed"))
      .def("train_chunk", &Word2VecKernel::train_chunk, py::arg("token_ids"),
           py::arg("lr_start"), py::arg("lr_end"),
           "Train on one chunk; returns (raw_words, trained_words, examples, "
           "loss_sum, loss_count).")
      .def("sample_noise", &Word2VecKernel::sample_noise, py::arg("n"),
           py::arg("seed"), "Draw n token ids from the noise distribution.");
}
