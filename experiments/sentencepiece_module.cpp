// The SentencePiece library behind a C interface, built as its own module (libmixlab_spm.so)
// that experiments/tokenizer.cpp loads with dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why: Debian's libsentencepiece bundles and exports its own protobuf-lite, and Debian's
// LibTorch links the system libprotobuf; linked into one executable, libprotobuf's
// initialisers bind to SentencePiece's copies and the process crashes before main. Loaded
// locally with its own symbols first, each library keeps its own protobuf.
//
// Every function returns 0 on success; on failure it returns 1 and sets *error to a malloc'd
// message. Buffers it returns are malloc'd: the caller frees them with mixlab_spm_free.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

char* copy(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

int fail(const sentencepiece::util::Status& status, char** error) {
  *error = copy(status.ToString());
  return 1;
}

class Sentences : public sentencepiece::SentenceIterator {
 public:
  Sentences(const char* const* sentences, size_t n) : sentences_(sentences), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (i_ < n_) value_ = sentences_[i_];
  }
  const char* const* sentences_;
  size_t n_, i_ = 0;
  std::string value_;
};

}  // namespace

extern "C" {

void mixlab_spm_free(void* p) {
  std::free(p);
}

// Trains on n NUL-terminated sentences with n_args (key, value) trainer arguments and a seed;
// the serialized model goes to *model (*model_size bytes).
int mixlab_spm_train(const char* const* sentences, size_t n, const char* const* keys,
                     const char* const* values, size_t n_args, unsigned seed, char** model,
                     size_t* model_size, char** error) {
  std::unordered_map<std::string, std::string> args;
  for (size_t i = 0; i < n_args; ++i) args[keys[i]] = values[i];
  sentencepiece::SetRandomGeneratorSeed(seed);
  Sentences it(sentences, n);
  std::string bytes;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &bytes);
  if (!status.ok()) return fail(status, error);
  *model = static_cast<char*>(std::malloc(bytes.size()));
  std::memcpy(*model, bytes.data(), bytes.size());
  *model_size = bytes.size();
  return 0;
}

int mixlab_spm_load(const char* path, void** processor, char** error) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto status = sp->Load(path);
  if (!status.ok()) {
    delete sp;
    return fail(status, error);
  }
  *processor = sp;
  return 0;
}

void mixlab_spm_unload(void* processor) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(processor);
}

int mixlab_spm_piece_size(const void* processor) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->GetPieceSize();
}

int mixlab_spm_piece_to_id(const void* processor, const char* piece) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->PieceToId(piece);
}

// Thread-safe: the processor is only read.
int mixlab_spm_encode(const void* processor, const char* text, size_t size, int** ids, size_t* n,
                      char** error) {
  std::vector<int> out;
  auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Encode(
      std::string_view(text, size), &out);
  if (!status.ok()) return fail(status, error);
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, out.size()) * sizeof(int)));
  std::memcpy(*ids, out.data(), out.size() * sizeof(int));
  *n = out.size();
  return 0;
}

int mixlab_spm_decode(const void* processor, const int* ids, size_t n, char** text, size_t* size,
                      char** error) {
  std::string out;
  auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Decode(
      std::vector<int>(ids, ids + n), &out);
  if (!status.ok()) return fail(status, error);
  *text = copy(out);
  *size = out.size();
  return 0;
}

}  // extern "C"
