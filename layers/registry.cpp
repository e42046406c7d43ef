#include "layers/registry.h"

#include <algorithm>
#include <map>

#include "layers/attention_mixer.h"
#include "layers/dense.h"
#include "layers/diagonal_ssm.h"
#include "layers/expert_choice.h"
#include "layers/local_attention.h"
#include "layers/mot.h"
#include "layers/recurrence.h"
#include "layers/soft_moe.h"
#include "layers/token_choice.h"
#include "layers/transition.h"

namespace mixlab {

namespace {

using ParseFn = FfnBuilder (*)(const ConfigReader&, const ModelDims&);

// The one table of layer types.
const std::map<std::string, ParseFn>& table() {
  static const std::map<std::string, ParseFn> types = {
      {"dense", &parse_dense},
      {"expert_choice", &parse_expert_choice},
      {"mot", &parse_mot},
      {"soft_moe", &parse_soft_moe},
      {"switch", &parse_switch},
      {"top_k", &parse_top_k},
      {"transition", &parse_transition},
  };
  return types;
}

using MixerParseFn = MixerBuilder (*)(const ConfigReader&, const MixerDims&);

// The one table of token mixers.
const std::map<std::string, MixerParseFn>& mixer_table() {
  static const std::map<std::string, MixerParseFn> types = {
      {"attention", &parse_attention_mixer},
      {"diagonal_ssm", &parse_diagonal_ssm},
      {"local_attention", &parse_local_attention},
      {"recurrence", &parse_recurrence},
  };
  return types;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::string joined_types() {
  return joined(ffn_types());
}

}  // namespace

FfnBuilder parse_ffn(const Json& ffn, const std::string& path, const ModelDims& dims) {
  if (!ffn.is_object()) throw ConfigError(path, short_value(ffn), "must be an object");
  ConfigReader cfg(ffn, path);
  if (!cfg.has("type")) cfg.fail("type", "required: one of " + joined_types());
  const std::string type = cfg.get_string("type");
  auto it = table().find(type);
  if (it == table().end()) cfg.fail("type", "unknown layer type; known: " + joined_types());
  FfnBuilder builder = it->second(cfg, dims);
  cfg.reject_unknown_keys();
  return builder;
}

std::vector<std::string> ffn_types() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  return names;
}

bool ffn_mixes_batch_rows(const std::string& type) {
  return type == "mot" || type == "expert_choice" || type == "soft_moe" || type == "transition";
}

MixerBuilder parse_mixer(const Json& mixer, const std::string& path, const MixerDims& dims) {
  if (!mixer.is_object()) throw ConfigError(path, short_value(mixer), "must be an object");
  ConfigReader cfg(mixer, path);
  const std::string known = joined(mixer_types());
  if (!cfg.has("type")) cfg.fail("type", "required: one of " + known);
  auto it = mixer_table().find(cfg.get_string("type"));
  if (it == mixer_table().end()) cfg.fail("type", "unknown mixer type; known: " + known);
  MixerBuilder builder = it->second(cfg, dims);
  cfg.reject_unknown_keys();
  return builder;
}

std::vector<std::string> mixer_types() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : mixer_table()) names.push_back(name);
  return names;
}

}  // namespace mixlab
