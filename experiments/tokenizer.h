// A SentencePiece tokenizer (data.tokenizer "sentencepiece"): trained with the SentencePiece
// library on a corpus's training split only, cached on disk, and the corpus's token streams
// with it, so a run neither retrains nor re-tokenizes 100 MB.
//
// Training is deterministic: identity normalization (no NFKC, whitespace kept), byte fallback
// (any byte round-trips), "\n" as its own piece, no dummy prefix, a fixed thread count and
// seed, and a fixed input sample (every k-th sentence when the split is larger than
// kMaxTrainingBytes). So decode(encode(x)) == x for any text, and two trainings on the same
// split give the same model bytes.
//
// The cache: <corpus folder>/.tokenizers/<key>.{model,train.tok,validation.tok} (a corpus
// that is one file: its folder's .tokenizers), or, when that folder is not writable (an
// installed corpus), $MIXLAB_CACHE_DIR/tokenizers, else $XDG_CACHE_HOME/mixlab/tokenizers,
// else ~/.cache/mixlab/tokenizers. <key> hashes the corpus fingerprint and the options, so a
// changed corpus or other options never reuse a stale model. Concurrent processes (a sweep
// with --jobs 2) serialise on <key>.lock and write through a temporary file and a rename.
//
// The library is reached through the module libmixlab_spm.so (sentencepiece_module.cpp),
// loaded on first use: the build tree's, or <prefix>/lib/mixlab's when installed.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mixlab {

struct SentencePieceOptions {
  int64_t vocab_size = 16384;
  std::string model_type = "unigram";  // unigram | bpe
};

// The training split is sampled down to about this many bytes of sentences.
constexpr int64_t kMaxTrainingBytes = int64_t(24) << 20;
constexpr int64_t kMinVocabSize = 300;  // 256 byte pieces, <unk>, "\n" and some characters
constexpr int64_t kMaxVocabSize = 1 << 20;

class SentencePieceTokenizer {
 public:
  // Throws std::runtime_error when the file is not a SentencePiece model.
  explicit SentencePieceTokenizer(const std::string& model_file);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;
  int64_t vocab_size() const;
  // Token ids of `text`, line by line, with the "\n" piece between lines; long lines are cut
  // before a space (no piece spans one, so the ids are those of the whole line). Uses
  // `threads` threads over the lines; the result does not depend on how many.
  std::vector<int32_t> encode(const std::string& text, int threads = 1) const;
  // SentencePiece's own encoding of `text` in one call (no cutting, no newline handling).
  std::vector<int32_t> encode_whole(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  void* processor_ = nullptr;
};

// Where the tokenizers of the corpus at `corpus_location` are cached (created if need be).
std::filesystem::path tokenizer_cache_dir(const std::filesystem::path& corpus_location);

// The cache name of a tokenizer for a corpus with `corpus_fingerprint` (16 hex digits).
std::string tokenizer_key(const std::string& corpus_fingerprint,
                          const SentencePieceOptions& options);

// Trains a model on `training_text` into `model_file` (through a temporary file and a rename).
// Throws std::invalid_argument with SentencePiece's reason when it cannot (e.g. a vocabulary
// too large for the text).
void train_sentencepiece(const std::string& training_text, const SentencePieceOptions& options,
                         const std::filesystem::path& model_file);

// A corpus tokenized with SentencePiece: int32 token streams.
struct SentencePieceCorpus {
  torch::Tensor train, validation;  // 1-D int32
  int64_t vocab_size = 0;
  std::filesystem::path model_file;
  bool trained = false;    // this call trained the model (else it was in the cache)
  bool tokenized = false;  // this call tokenized the splits (else the streams were cached)
};

// The token streams of a corpus, from the cache when they are there; otherwise
// `read_splits()` gives (training text, validation text), the model is trained on the first
// (unless cached) and both are tokenized and cached. Under the key's lock.
SentencePieceCorpus sentencepiece_corpus(
    const std::string& corpus_fingerprint, const std::filesystem::path& corpus_location,
    const SentencePieceOptions& options,
    const std::function<std::pair<std::string, std::string>()>& read_splits);

// Token-stream files: "MIXTOK1\n", the width (2: uint16, 4: int32) and the count, then the
// ids, little-endian; uint16 when the vocabulary fits. read_token_file gives an undefined
// tensor when the file is missing or damaged.
void write_token_file(const std::filesystem::path& file, const std::vector<int32_t>& ids,
                      int64_t vocab_size);
torch::Tensor read_token_file(const std::filesystem::path& file);

}  // namespace mixlab
