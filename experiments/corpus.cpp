#include "experiments/corpus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "experiments/install_layout.h"
#include "experiments/tokenizer.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFetchHint = "run `bash scripts/setup.sh` to fetch it";
constexpr const char* kEnglishHint = "run `bash scripts/setup.sh --corpus english` to assemble it";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_brown_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.size() == 4 && name[0] == 'c' && std::isalpha(static_cast<unsigned char>(name[1])) &&
         std::isdigit(static_cast<unsigned char>(name[2])) &&
         std::isdigit(static_cast<unsigned char>(name[3]));
}

std::vector<fs::path> corpus_files(const DataConfig& data, const fs::path& location) {
  std::vector<fs::path> files;
  if (fs::is_regular_file(location)) return {location};
  if (!fs::is_directory(location)) return files;
  for (const auto& entry : fs::directory_iterator(location)) {
    if (!entry.is_regular_file()) continue;
    if (data.corpus == "brown" ? is_brown_file(entry.path()) : entry.path().extension() == ".txt")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

torch::Tensor bytes_tensor(const std::string& text) {
  auto t = torch::empty({int64_t(text.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

// splitmix64: a stateless, well-mixed hash for window offsets.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Batch windows(const torch::Tensor& tokens, const std::vector<int64_t>& offsets, int64_t seq_len) {
  auto starts = torch::tensor(offsets, torch::kLong).unsqueeze(1);
  auto index = starts + torch::arange(seq_len + 1, torch::kLong).unsqueeze(0);
  auto w = tokens.index_select(0, index.reshape({-1})).to(torch::kLong).view(index.sizes());
  using torch::indexing::Slice;
  return {w.index({Slice(), Slice(0, seq_len)}).contiguous(),
          w.index({Slice(), Slice(1, seq_len + 1)}).contiguous()};
}

}  // namespace

int64_t tokenizer_vocab_size(const DataConfig& data) {
  return data.tokenizer == "sentencepiece" ? data.vocab_size : 256;
}

std::string corpus_location(const DataConfig& data) {
  if (data.corpus == "synthetic") return "synthetic";  // generated: no files
  if (!data.path.empty()) return data.path;
  if (const char* dir = std::getenv("MIXLAB_DATA_DIR"))
    return (fs::path(dir) / data.corpus).string();
  return default_corpus_dir(data.corpus).string();
}

void check_corpus_available(const DataConfig& data) {
  if (data.corpus == "synthetic") return;
  const std::string where = corpus_location(data);
  const std::string key = data.path.empty() ? "data.corpus" : "data.path";
  const std::string value = "\"" + (data.path.empty() ? data.corpus : data.path) + "\"";
  auto files = corpus_files(data, where);
  if (files.size() < (fs::is_regular_file(where) ? 1u : 2u))
    throw ConfigError(key, value,
                      data.corpus == "brown"
                          ? fmt::format("the Brown corpus is not at {}: {}", where, kFetchHint)
                      : data.corpus == "english"
                          ? fmt::format("the english corpus is not at {}: {}", where, kEnglishHint)
                          : fmt::format("no text found at {} (a file, or a folder of .txt files, "
                                        "at least two for a split by file)",
                                        where));
}

CorpusIdentity corpus_identity(const DataConfig& data) {
  static std::mutex mutex;
  static std::map<std::string, CorpusIdentity> cache;
  // A synthetic run's data is what the generators of this build make of its config (which the
  // run's hash covers): their version is its fingerprint, and no file is read.
  if (data.corpus == "synthetic")
    return {std::string(kRecallTasksVersion) + " (generated)", "synthetic"};
  check_corpus_available(data);
  const std::string where = corpus_location(data);
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = data.corpus + ":" + where;
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  uint64_t hash = 1469598103934665603ull;
  auto add = [&hash](const std::string& bytes) {
    for (unsigned char c : bytes) {
      hash ^= c;
      hash *= 1099511628211ull;
    }
  };
  const auto files = corpus_files(data, where);
  uint64_t total = 0;
  for (const auto& file : files) {
    const std::string text = read_file(file);
    add(file.filename().string());
    // NUL-separated, so a name and a size cannot run into each other.
    add(std::string(1, '\0') + std::to_string(text.size()) + std::string(1, '\0'));
    add(text);
    total += text.size();
  }
  std::error_code ec;
  fs::path location = fs::weakly_canonical(fs::absolute(where), ec);
  if (ec) location = fs::absolute(where);
  CorpusIdentity identity{fmt::format("{:016x} ({} files: {} bytes)", hash, files.size(), total),
                          location.string()};
  cache[key] = identity;
  return identity;
}

std::string strip_brown_tags(const std::string& tagged) {
  std::string out;
  std::istringstream lines(tagged);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string word, sentence;
    while (words >> word) {
      auto slash = word.rfind('/');
      if (slash != std::string::npos && slash > 0) word.resize(slash);
      if (!sentence.empty()) sentence += ' ';
      sentence += word;
    }
    if (!sentence.empty()) out += sentence + '\n';
  }
  return out;
}

std::shared_ptr<const TokenCorpus> load_corpus(const DataConfig& data) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TokenCorpus>> cache;
  if (data.corpus == "synthetic")
    throw std::logic_error("load_corpus: data.corpus \"synthetic\" has no files (task_data.h)");
  check_corpus_available(data);
  const std::string where = corpus_location(data);
  std::lock_guard<std::mutex> lock(mutex);
  const bool sentencepiece = data.tokenizer == "sentencepiece";
  auto key = data.corpus + ":" + where;
  if (sentencepiece) key += fmt::format(":sentencepiece:{}:{}", data.model_type, data.vocab_size);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  auto files = corpus_files(data, where);
  size_t n_val = 0;
  auto read_splits = [&] {
    std::string train, validation;
    n_val = 0;
    if (files.size() == 1) {
      std::string text = read_file(files[0]);
      size_t cut = text.size() - text.size() / 20;
      train = text.substr(0, cut);
      validation = text.substr(cut);
    } else {
      for (size_t i = 0; i < files.size(); ++i) {
        std::string text = read_file(files[i]);
        if (data.corpus == "brown") text = strip_brown_tags(text);
        (i % 20 == 0 ? validation : train) += text + "\n";
        n_val += i % 20 == 0;
      }
    }
    return std::pair{std::move(train), std::move(validation)};
  };
  auto corpus = std::make_shared<TokenCorpus>();
  if (sentencepiece) {
    // Trained on the training split only, and with the token streams cached (tokenizer.h).
    SentencePieceCorpus sp;
    try {
      sp = sentencepiece_corpus(corpus_identity(data).fingerprint, where,
                                {data.vocab_size, data.model_type}, read_splits);
    } catch (const std::invalid_argument& e) {
      throw ConfigError("data.vocab_size", std::to_string(data.vocab_size),
                        fmt::format("SentencePiece cannot train on {}: {}", where, e.what()));
    }
    if (files.size() > 1) n_val = (files.size() + 19) / 20;
    corpus->description = fmt::format(
        "{} ({}): {} files, {} for validation; {} / {} SentencePiece {} tokens (vocabulary {}, "
        "{})",
        data.corpus, where, files.size(), n_val, sp.train.numel(), sp.validation.numel(),
        data.model_type, sp.vocab_size, sp.model_file.string());
    corpus->train = sp.train;
    corpus->validation = sp.validation;
  } else {
    auto [train, validation] = read_splits();
    corpus->description =
        fmt::format("{} ({}): {} files, {} for validation; {} / {} bytes", data.corpus, where,
                    files.size(), n_val, train.size(), validation.size());
    corpus->train = bytes_tensor(train);
    corpus->validation = bytes_tensor(validation);
  }
  cache[key] = corpus;
  return corpus;
}

WindowSampler::WindowSampler(torch::Tensor tokens, int64_t batch_size, int64_t seq_len,
                             uint64_t seed)
    : tokens_(std::move(tokens)), batch_size_(batch_size), seq_len_(seq_len), seed_(seed) {
  TORCH_CHECK(tokens_.numel() > seq_len_ + 1, "training split shorter than one window");
}

Batch WindowSampler::batch(int64_t step) const {
  const uint64_t range = uint64_t(tokens_.numel() - seq_len_ - 1);
  std::vector<int64_t> offsets(batch_size_);
  const uint64_t base = mix(seed_ ^ mix(uint64_t(step) * 0x2545F4914F6CDD1Dull));
  for (int64_t i = 0; i < batch_size_; ++i) offsets[i] = int64_t(mix(base + uint64_t(i)) % range);
  return windows(tokens_, offsets, seq_len_);
}

namespace {

// The even spread: window k of n_windows starts at k * span / n_windows; batch b holds windows
// b*B .. b*B+B-1 (consecutive ones) or, strided, windows b, b+n_batches, b+2 n_batches, ...:
// the same windows, regrouped so that the rows of a batch lie span / B apart.
std::vector<std::vector<int64_t>> layout_offsets(int64_t n_tokens, int64_t batch_size,
                                                 int64_t seq_len, int64_t n_batches, bool strided) {
  const int64_t n_windows = std::max<int64_t>(batch_size * n_batches, 1);
  const int64_t span = n_tokens - seq_len - 1;
  std::vector<std::vector<int64_t>> out(n_batches, std::vector<int64_t>(batch_size));
  for (int64_t b = 0; b < n_batches; ++b)
    for (int64_t i = 0; i < batch_size; ++i)
      out[b][i] = (strided ? i * n_batches + b : b * batch_size + i) * span / n_windows;
  return out;
}

bool rows_disjoint(const std::vector<std::vector<int64_t>>& batches, int64_t seq_len) {
  for (const auto& offsets : batches)  // increasing within a batch
    for (size_t i = 1; i < offsets.size(); ++i)
      if (offsets[i] - offsets[i - 1] < seq_len + 1) return false;
  return true;
}

}  // namespace

ValidationLayout validation_layout(int64_t n_tokens, int64_t batch_size, int64_t seq_len,
                                   int64_t n_batches) {
  if (rows_disjoint(layout_offsets(n_tokens, batch_size, seq_len, n_batches, false), seq_len))
    return ValidationLayout::even_spread;
  // span >= B (S + 1): consecutive rows of a strided batch lie at least floor(span / B) >= S + 1
  // tokens apart, so they are disjoint.
  if (n_tokens - seq_len - 1 >= batch_size * (seq_len + 1)) return ValidationLayout::strided;
  return ValidationLayout::too_short;
}

std::vector<std::vector<int64_t>> validation_offsets(int64_t n_tokens, int64_t batch_size,
                                                     int64_t seq_len, int64_t n_batches,
                                                     bool rows_mix) {
  TORCH_CHECK(n_tokens - seq_len - 1 > 0, "validation split shorter than one window");
  const ValidationLayout layout = validation_layout(n_tokens, batch_size, seq_len, n_batches);
  if (layout == ValidationLayout::too_short && rows_mix)
    throw ConfigError(
        "train.batch_size", std::to_string(batch_size),
        fmt::format("the validation split ({} tokens) is too short for a batch of {} disjoint "
                    "windows of model.seq_len + 1 = {} tokens: it needs at least (train.batch_size "
                    "+ 1) x (model.seq_len + 1) = {} tokens, since this layer mixes the rows of a "
                    "batch and no row may see another's targets; lower train.batch_size or "
                    "model.seq_len, or give the corpus more validation text",
                    n_tokens, batch_size, seq_len + 1, (batch_size + 1) * (seq_len + 1)));
  return layout_offsets(n_tokens, batch_size, seq_len, n_batches,
                        layout == ValidationLayout::strided);
}

std::vector<Batch> validation_batches(const torch::Tensor& tokens, int64_t batch_size,
                                      int64_t seq_len, int64_t n_batches, bool rows_mix) {
  std::vector<Batch> out;
  for (const auto& offsets :
       validation_offsets(tokens.numel(), batch_size, seq_len, n_batches, rows_mix))
    out.push_back(windows(tokens, offsets, seq_len));
  return out;
}

}  // namespace mixlab
