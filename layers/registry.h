// Builds a feed-forward layer, or a token mixer, from its JSON config by type name.
//
// Each layer type is one file pair in layers/ exposing a parse function that validates its
// config section (every key, ranges, shapes against the model) and returns a builder. Adding
// a layer means adding that file pair and one line to the table in registry.cpp.
#pragma once

#include <string>
#include <vector>

#include "layers/ffn_layer.h"
#include "layers/mixer.h"

namespace mixlab {

// Reads `ffn` (found at dotted `path`, e.g. "ffn"), checks it completely and returns the
// builder. Throws ConfigError for an unknown type, unknown key or impossible shape.
FfnBuilder parse_ffn(const Json& ffn, const std::string& path, const ModelDims& dims);

// The registered type names, sorted.
std::vector<std::string> ffn_types();

// Whether a layer of `type` mixes the rows of a batch: MoT, Expert Choice, Soft MoE and
// transition form groups of tokens at one position across sequences (group_by_position).
bool ffn_mixes_batch_rows(const std::string& type);

// Token mixers, the layers' siblings (layers/mixer.h), the same way: `mixer` (at `path`,
// e.g. "mixer") checked completely, or ConfigError naming the key.
MixerBuilder parse_mixer(const Json& mixer, const std::string& path, const MixerDims& dims);
std::vector<std::string> mixer_types();

}  // namespace mixlab
