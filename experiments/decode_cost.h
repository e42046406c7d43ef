// What decoding costs a trained model: time per generated token and the cache its mixers keep.
//
// The token-mixing paper compares mixers by accuracy next to their decode time and cache per
// token; a run of the recall tasks records both for the model it trained, at its own length,
// so the table reads them from the run (sweep report --table accuracy). The decode is the
// model's: embeddings, every block with its mixer's step(x_t, cache) (layers/mixer.h) and its
// FFN, the final LayerNorm and the tied head, one token of one sequence at a time, as a
// generator runs it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "experiments/model.h"

namespace mixlab {

// Decodes tokens (S) int64, S <= model.seq_len, token by token from an empty cache; returns the
// logits (S, vocab), equal to the training forward's (tested). `cache_entries`, if given,
// receives per layer the entries its mixer's cache holds after the last token (MixerCache::
// entries: positions or states per sequence and head, as `sweep bench --what decode` counts).
// `mixer_seconds`, if given, receives the wall-clock spent in the mixers' steps (the device
// synchronised around each). No gradients; the caller chooses train or eval mode.
torch::Tensor decode_logits(GptImpl& model, const torch::Tensor& tokens,
                            std::vector<int64_t>* cache_entries = nullptr,
                            double* mixer_seconds = nullptr);

struct DecodeCost {
  double ms_per_token = 0;  // wall-clock of decoding the sequence / its length, median
  // The part of it spent in the mixers' steps, all layers: what differs between mixers (the
  // rest, embeddings, FFNs and the head over the task's vocabulary, is the same for every
  // mixer of a task). Taken from the same median decode.
  double mixer_ms_per_token = 0;
  double cache_entries = 0;  // mean over layers after model.seq_len tokens (per sequence, head)
};

// Decodes one sequence of model.seq_len tokens (token values do not change the cost: ids
// 0, 1, 2, ... modulo the vocabulary) on the model's device, once untimed and `repeats` times
// timed (the device synchronised before each clock read); the median decode's times per token.
// Leaves the model in the mode it found it in.
DecodeCost measure_decode_cost(GptImpl& model, int repeats = 5);

}  // namespace mixlab
