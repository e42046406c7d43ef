#include "experiments/tokenizer.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "experiments/install_layout.h"
#include "spm_module_path.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// Bumped whenever the training recipe below changes, so older cached models are not reused.
constexpr const char* kRecipe = "spm-v1";
// Lines longer than this are cut before a space: SentencePiece skips training sentences over
// max_sentence_length, and its encoder's lattice grows with the line.
constexpr size_t kMaxSentenceBytes = 4096;
constexpr int kTrainThreads = 4;  // fixed: the EM sums do not then depend on the machine
constexpr unsigned kSeed = 20261201;
constexpr char kMagic[8] = {'M', 'I', 'X', 'T', 'O', 'K', '1', '\n'};

struct Piece {
  std::string_view text;
  bool newline_after;
};

// The text as SentencePiece sentences: its lines, long ones cut before a space (or, with no
// space near, at kMaxSentenceBytes on a UTF-8 character boundary).
std::vector<Piece> sentences(const std::string& text) {
  std::vector<Piece> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    size_t start = pos;
    while (end - start > kMaxSentenceBytes) {
      size_t cut = text.rfind(' ', start + kMaxSentenceBytes);
      if (cut == std::string::npos || cut <= start) {
        cut = start + kMaxSentenceBytes;
        while (cut > start + 1 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      }
      out.push_back({std::string_view(text).substr(start, cut - start), false});
      start = cut;
    }
    out.push_back({std::string_view(text).substr(start, end - start), nl != std::string::npos});
    pos = end + 1;
  }
  return out;
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

bool writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  return !ec && fs::is_directory(dir) && ::access(dir.c_str(), W_OK) == 0;
}

// Writes `bytes` to `file` through a temporary file in the same folder and a rename, so a
// reader never sees half a file.
void write_atomically(const fs::path& file, const std::string& bytes) {
  const fs::path tmp = file.string() + fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, file);
}

// An exclusive flock on `file` for the scope.
class FileLock {
 public:
  explicit FileLock(const fs::path& file) : fd_(::open(file.c_str(), O_RDWR | O_CREAT, 0644)) {
    if (fd_ < 0) throw std::runtime_error("cannot open the lock file " + file.string());
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) throw std::runtime_error("cannot lock " + file.string());
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

// The functions of libmixlab_spm.so (sentencepiece_module.cpp), loaded once per process.
struct SpmModule {
  void (*free)(void*);
  int (*train)(const char* const*, size_t, const char* const*, const char* const*, size_t, unsigned,
               char**, size_t*, char**);
  int (*load)(const char*, void**, char**);
  void (*unload)(void*);
  int (*piece_size)(const void*);
  int (*piece_to_id)(const void*, const char*);
  int (*encode)(const void*, const char*, size_t, int**, size_t*, char**);
  int (*decode)(const void*, const int*, size_t, char**, size_t*, char**);

  // Throws std::runtime_error naming `what` and the module's message.
  void check(int rc, char* error, const std::string& what) const {
    if (rc == 0) return;
    std::string message = error ? error : "unknown error";
    free(error);
    throw std::runtime_error(what + ": " + message);
  }
};

const SpmModule& spm() {
  static const SpmModule module = [] {
    const fs::path path =
        running_from_build_tree()
            ? fs::path(MIXLAB_SPM_MODULE)
            : executable_path().parent_path().parent_path() / "lib/mixlab/libmixlab_spm.so";
    // Local, with its own symbols first: its protobuf-lite must not meet LibTorch's libprotobuf.
    void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib)
      throw std::runtime_error(
          fmt::format("cannot load the SentencePiece module {}: {}", path.string(), ::dlerror()));
    auto sym = [&](const char* name) {
      void* f = ::dlsym(lib, name);
      if (!f) throw std::runtime_error(fmt::format("{} lacks {}", path.string(), name));
      return f;
    };
    SpmModule m;
    m.free = reinterpret_cast<decltype(m.free)>(sym("mixlab_spm_free"));
    m.train = reinterpret_cast<decltype(m.train)>(sym("mixlab_spm_train"));
    m.load = reinterpret_cast<decltype(m.load)>(sym("mixlab_spm_load"));
    m.unload = reinterpret_cast<decltype(m.unload)>(sym("mixlab_spm_unload"));
    m.piece_size = reinterpret_cast<decltype(m.piece_size)>(sym("mixlab_spm_piece_size"));
    m.piece_to_id = reinterpret_cast<decltype(m.piece_to_id)>(sym("mixlab_spm_piece_to_id"));
    m.encode = reinterpret_cast<decltype(m.encode)>(sym("mixlab_spm_encode"));
    m.decode = reinterpret_cast<decltype(m.decode)>(sym("mixlab_spm_decode"));
    return m;
  }();
  return module;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file) {
  char* error = nullptr;
  spm().check(spm().load(model_file.c_str(), &processor_, &error), error,
              "cannot load the SentencePiece model " + model_file);
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (processor_) spm().unload(processor_);
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return spm().piece_size(processor_);
}

std::vector<int32_t> SentencePieceTokenizer::encode_whole(const std::string& text) const {
  int* ids = nullptr;
  size_t n = 0;
  char* error = nullptr;
  spm().check(spm().encode(processor_, text.data(), text.size(), &ids, &n, &error), error,
              "SentencePiece encode");
  std::vector<int32_t> out(ids, ids + n);
  spm().free(ids);
  return out;
}

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text, int threads) const {
  const auto pieces = sentences(text);
  const int32_t newline = spm().piece_to_id(processor_, "\n");
  threads = std::max(1, std::min<int>(threads, int(pieces.size() / 64) + 1));
  std::vector<std::vector<int32_t>> parts(threads);
  std::vector<std::string> errors(threads);
  auto work = [&](int t) {
    const size_t begin = pieces.size() * t / threads, end = pieces.size() * (t + 1) / threads;
    for (size_t i = begin; i < end; ++i) {
      if (!pieces[i].text.empty()) {
        int* ids = nullptr;
        size_t n = 0;
        char* error = nullptr;
        if (spm().encode(processor_, pieces[i].text.data(), pieces[i].text.size(), &ids, &n,
                         &error) != 0) {
          errors[t] = error ? error : "unknown error";
          spm().free(error);
          return;
        }
        parts[t].insert(parts[t].end(), ids, ids + n);
        spm().free(ids);
      }
      if (pieces[i].newline_after) parts[t].push_back(newline);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  std::vector<int32_t> out;
  for (int t = 0; t < threads; ++t) {
    if (!errors[t].empty()) throw std::runtime_error("SentencePiece encode: " + errors[t]);
    out.insert(out.end(), parts[t].begin(), parts[t].end());
  }
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  char* text = nullptr;
  size_t size = 0;
  char* error = nullptr;
  spm().check(spm().decode(processor_, ids.data(), ids.size(), &text, &size, &error), error,
              "SentencePiece decode");
  std::string out(text, size);
  spm().free(text);
  return out;
}

fs::path tokenizer_cache_dir(const fs::path& corpus_location) {
  const fs::path folder =
      fs::is_directory(corpus_location) ? corpus_location : corpus_location.parent_path();
  const fs::path beside = (folder.empty() ? fs::path(".") : folder) / ".tokenizers";
  if (writable_dir(beside)) return beside;
  fs::path base;
  if (const char* dir = std::getenv("MIXLAB_CACHE_DIR"); dir && *dir)
    base = dir;
  else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    base = fs::path(xdg) / "mixlab";
  else if (const char* home = std::getenv("HOME"); home && *home)
    base = fs::path(home) / ".cache" / "mixlab";
  else
    base = fs::temp_directory_path() / "mixlab-cache";
  const fs::path dir = base / "tokenizers";
  if (!writable_dir(dir))
    throw std::runtime_error(fmt::format(
        "cannot write a tokenizer cache at {} or {} (set MIXLAB_CACHE_DIR to a writable folder)",
        beside.string(), dir.string()));
  return dir;
}

std::string tokenizer_key(const std::string& corpus_fingerprint,
                          const SentencePieceOptions& options) {
  const std::string what = fmt::format("{}\n{}\n{}\n{}\n{}", kRecipe, corpus_fingerprint,
                                       options.model_type, options.vocab_size, kMaxTrainingBytes);
  return fmt::format("{:016x}", fnv1a(what));
}

void train_sentencepiece(const std::string& training_text, const SentencePieceOptions& options,
                         const fs::path& model_file) {
  // The fixed sample: every k-th sentence, k chosen so that about kMaxTrainingBytes remain.
  const auto all = sentences(training_text);
  size_t total = 0;
  for (const auto& p : all) total += p.text.size();
  const size_t stride = std::max<size_t>(1, (total + kMaxTrainingBytes - 1) / kMaxTrainingBytes);
  std::vector<std::string> sample;
  for (size_t i = 0; i < all.size(); i += stride)
    if (!all[i].text.empty()) sample.emplace_back(all[i].text);
  if (sample.empty()) throw std::invalid_argument("the training split has no text");
  std::vector<const char*> sentences;
  for (const auto& line : sample) sentences.push_back(line.c_str());

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9995"},
      {"user_defined_symbols", "\n"},
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(2 * kMaxSentenceBytes)},
      {"num_threads", std::to_string(kTrainThreads)},
      {"minloglevel", "1"},
  };
  // In a fixed order (the map's is not), though the trainer reads them all before it starts.
  std::vector<std::pair<std::string, std::string>> sorted(args.begin(), args.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : sorted) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  char* model = nullptr;
  size_t size = 0;
  char* error = nullptr;
  if (spm().train(sentences.data(), sentences.size(), keys.data(), values.data(), keys.size(),
                  kSeed, &model, &size, &error) != 0) {
    std::string message = error ? error : "unknown error";
    spm().free(error);
    throw std::invalid_argument(message);
  }
  std::string bytes(model, size);
  spm().free(model);
  write_atomically(model_file, bytes);
}

void write_token_file(const fs::path& file, const std::vector<int32_t>& ids, int64_t vocab_size) {
  const uint32_t width = vocab_size <= 65536 ? 2 : 4;
  const uint64_t count = ids.size();
  std::string bytes(kMagic, sizeof kMagic);
  bytes.append(reinterpret_cast<const char*>(&width), 4);
  bytes.append(4, '\0');
  bytes.append(reinterpret_cast<const char*>(&count), 8);
  if (width == 2) {
    std::vector<uint16_t> narrow(ids.begin(), ids.end());
    bytes.append(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
  } else {
    bytes.append(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  }
  write_atomically(file, bytes);
}

torch::Tensor read_token_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  char magic[8];
  uint32_t width = 0, reserved = 0;
  uint64_t count = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&width), 4);
  in.read(reinterpret_cast<char*>(&reserved), 4);
  in.read(reinterpret_cast<char*>(&count), 8);
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (!in || std::memcmp(magic, kMagic, 8) != 0 || (width != 2 && width != 4) || ec ||
      size != 24 + count * width)
    return {};
  auto tokens = torch::empty({int64_t(count)}, torch::kInt32);
  int32_t* out = tokens.data_ptr<int32_t>();
  if (width == 4) {
    in.read(reinterpret_cast<char*>(out), std::streamsize(count * 4));
  } else {
    std::vector<uint16_t> narrow(count);
    in.read(reinterpret_cast<char*>(narrow.data()), std::streamsize(count * 2));
    std::copy(narrow.begin(), narrow.end(), out);
  }
  return in ? tokens : torch::Tensor();
}

SentencePieceCorpus sentencepiece_corpus(
    const std::string& corpus_fingerprint, const fs::path& corpus_location,
    const SentencePieceOptions& options,
    const std::function<std::pair<std::string, std::string>()>& read_splits) {
  const fs::path dir = tokenizer_cache_dir(corpus_location);
  const std::string key = tokenizer_key(corpus_fingerprint, options);
  SentencePieceCorpus out;
  out.model_file = dir / (key + ".model");
  const fs::path train_file = dir / (key + ".train.tok");
  const fs::path validation_file = dir / (key + ".validation.tok");

  FileLock lock(dir / (key + ".lock"));
  const bool have_model = fs::exists(out.model_file);
  if (have_model) {
    out.train = read_token_file(train_file);
    out.validation = read_token_file(validation_file);
    if (out.train.defined() && out.validation.defined()) {
      out.vocab_size = SentencePieceTokenizer(out.model_file.string()).vocab_size();
      return out;
    }
  }
  auto [train_text, validation_text] = read_splits();
  if (!have_model) {
    train_sentencepiece(train_text, options, out.model_file);
    out.trained = true;
  }
  SentencePieceTokenizer tokenizer(out.model_file.string());
  out.vocab_size = tokenizer.vocab_size();
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  const auto train_ids = tokenizer.encode(train_text, threads);
  const auto validation_ids = tokenizer.encode(validation_text, threads);
  write_token_file(train_file, train_ids, out.vocab_size);
  write_token_file(validation_file, validation_ids, out.vocab_size);
  out.train = torch::tensor(train_ids, torch::kInt32);
  out.validation = torch::tensor(validation_ids, torch::kInt32);
  out.tokenized = true;
  return out;
}

}  // namespace mixlab
