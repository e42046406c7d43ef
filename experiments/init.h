// Weight initialisation schemes of a whole model, chosen by `model.init`.
//
// "gpt2" (the default) is what every layer does in its constructor: N(0, 0.02), the
// projections into the residual stream scaled by 1/sqrt(2 n_layers). Nothing is redrawn, so
// configs without the key keep their exact weights and results.
//
// "reference" is the MoT authors' code (llm-random, lizrd/core/initialization.py,
// `truncated_normal` with the papers' init_scale s = 0.1): every matrix drawn from a normal of
// std sqrt(s / fan_in) truncated to [-2 s, 2 s] (an absolute bound, not 2 std: it cuts only
// embeddings, whose fan-in is 1, and leaves matrices with fan-in >= 4 practically untouched),
// biases 0, LayerNorm gains 1 and shifts 0.
#pragma once

#include <torch/torch.h>

#include <string>

namespace mixlab {

// The reference's init scale s (init_scale 0.1 in every paper config).
constexpr double kReferenceInitScale = 0.1;

// The fan-in the reference initialisation uses for `weight`: 1 for an embedding table; the
// input width of a matrix applied as x W ((in, out), or (E, in, out) for stacked experts:
// size(-2)); in_features for a torch::nn::Linear weight (out, in).
enum class WeightKind { embedding, x_times_w, linear };
int64_t reference_fan_in(const torch::Tensor& weight, WeightKind kind);

// Fills `weight` with N(0, std) truncated to [low, high] (inverse-CDF sampling, as
// torch.nn.init.trunc_normal_), in place.
void truncated_normal_(torch::Tensor& weight, double std, double low, double high);

// Redraws every weight of `model` with the reference initialisation. The parameters the
// model module holds itself (token and position embeddings) have fan-in 1; torch::nn::Linear
// weights use in_features and their biases become 0; LayerNorm parameters keep (1, 0);
// every other parameter of two or more dimensions is an x W matrix (fan-in size(-2)); 0-d
// and 1-d parameters of the layers (temperatures) keep their values.
void init_reference(torch::nn::Module& model, double scale = kReferenceInitScale);

// The 2023 blog's scheme (its mini model): every matrix uniform on +-sqrt(3 s / fan_in), i.e.
// std sqrt(s / fan_in), with s = 1 by default; embeddings (fan-in 1) N(0, s), so N(0, 1);
// torch::nn::Linear biases 0; LayerNorm and 0-d / 1-d layer parameters keep their values.
constexpr double kFanInInitScale = 1.0;
void init_fan_in(torch::nn::Module& model, double scale = kFanInInitScale);

// Applies scheme `name` ("gpt2": nothing to redo; "reference": init_reference; "fan_in":
// init_fan_in) to a freshly built model, at scale s = `scale` (model.init_scale; 0: the
// scheme's default). Throws std::invalid_argument for an unknown name (run_config refuses it
// first).
void apply_init_scheme(torch::nn::Module& model, const std::string& name, double scale = 0);

}  // namespace mixlab
