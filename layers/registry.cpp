#include "layers/registry.h"

#include <algorithm>
#include <map>

#include "layers/dense.h"
#include "layers/expert_choice.h"
#include "layers/mot.h"
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

std::string joined_types() {
  std::string out;
  for (const auto& name : ffn_types()) out += (out.empty() ? "" : ", ") + name;
  return out;
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

}  // namespace mixlab
