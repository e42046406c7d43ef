#include "sweeps/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

namespace mixlab {

namespace {

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

// A variant name is a label in tables and the key of mean +- std: two names that print alike
// (differing only after a NUL or in another control character) would be averaged as one.
bool has_control_character(const std::string& name) {
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

// The seed of a run comes from the spec's "seeds" alone: set anywhere else it would be
// overwritten while the run's label still named it.
bool sets_seed(const std::string& dotted_key) {
  return dotted_key == "seed" || dotted_key.rfind("seed.", 0) == 0;
}

std::string label_value(const Json& v) {
  return v.is_string() ? v.get<std::string>() : canonical_dump(v);
}

std::string last_component(const std::string& dotted) {
  auto dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

// Applies `key = value` to the configs that have the key, or to all when none has it.
void apply_where_present(std::vector<Json*>& configs, const std::string& key, const Json& value,
                         const std::string& where) {
  bool any = false;
  for (Json* c : configs) any = any || find_path(*c, key) != nullptr;
  for (Json* c : configs) {
    if (!any || find_path(*c, key) != nullptr) {
      try {
        set_path(*c, key, value);
      } catch (const ConfigError& e) {
        throw ConfigError(where, short_value(value), e.message());
      }
    }
  }
}

}  // namespace

std::pair<std::string, Json> parse_override(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set", text, "expected key=value, e.g. train.steps=100");
  // Spec files are checked by the JSON parser; a command-line string is not: bytes that are
  // not UTF-8 would make every later dump (the config's hash, an error message) throw.
  try {
    (void)Json(text).dump();
  } catch (const Json::type_error&) {
    throw ConfigError("--set", Json(text).dump(-1, ' ', false, Json::error_handler_t::replace),
                      "is not valid UTF-8");
  }
  std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
  if (nests_too_deep(raw))
    throw ConfigError("--set " + key, short_value(Json(raw.substr(0, 80))),
                      fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth));
  Json value = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = raw;
  return {key, value};
}

Json SweepSpec::spec_with_overrides() const {
  Json out = spec;
  // As an object of dotted keys (the last --set of a key wins, as when applied in order), so
  // a changed override shows up as a changed key.
  for (const auto& text : overrides) {
    auto [key, value] = parse_override(text);
    out["--set"][key] = value;
  }
  return out;
}

std::string SweepSpec::spec_hash() const {
  return content_hash(spec_with_overrides());
}

SweepSpec parse_spec(const Json& spec, const std::string& file,
                     const std::vector<std::string>& overrides) {
  try {
    SweepSpec out;
    out.file = file;
    out.spec = spec;
    out.overrides = overrides;
    ConfigReader top(spec, "");
    out.name = top.get_string("name");
    if (!valid_name(out.name)) top.fail("name", "must be 1-100 letters, digits, '_', '-' or '.'");
    out.description = top.get_string("description", "");
    ConfigReader base_reader = top.child("base");
    (void)base_reader;
    const Json& base = top.raw("base");
    if (base.contains("seed"))
      throw ConfigError("base.seed", short_value(base["seed"]),
                        "a run's seed is set by the spec's \"seeds\" list, not in the base");

    // Variants: [{"name": ..., "dotted.key": value, ...}]; none means the base alone.
    std::vector<std::pair<std::string, Json>> variants;
    if (top.has("variants")) {
      const Json& vs = top.raw("variants");
      if (!vs.is_array() || vs.empty())
        top.fail("variants", "must be a non-empty array of objects");
      std::set<std::string> seen;
      for (size_t i = 0; i < vs.size(); ++i) {
        std::string where = fmt::format("variants[{}]", i);
        ConfigReader v(vs[i], where);
        std::string name = v.get_string("name");
        if (name.empty() || !seen.insert(name).second)
          v.fail("name", "must be a non-empty name used by no other variant");
        if (has_control_character(name))
          throw ConfigError(where + ".name", short_value(Json(name)),
                            "must not contain control characters (a NUL, a tab, a newline...)");
        Json config = base;
        for (auto it = vs[i].begin(); it != vs[i].end(); ++it) {
          if (it.key() == "name") continue;
          if (sets_seed(it.key()))
            throw ConfigError(where + "." + it.key(), short_value(it.value()),
                              "a run's seed is set by the spec's \"seeds\" list, not by a "
                              "variant (it would be overwritten)");
          try {
            set_path(config, it.key(), it.value());
          } catch (const ConfigError& e) {
            throw ConfigError(where + "." + it.key(), short_value(it.value()), e.message());
          }
        }
        variants.emplace_back(name, std::move(config));
      }
    } else {
      variants.emplace_back("base", base);
    }

    // Grid: {"dotted.key": [values]}; expanded in key order, cartesian.
    std::vector<std::pair<std::string, std::vector<Json>>> grid;
    if (top.has("grid")) {
      const Json& g = top.raw("grid");
      if (!g.is_object()) top.fail("grid", "must be an object of key: [values]");
      for (auto it = g.begin(); it != g.end(); ++it) {
        if (!it.value().is_array() || it.value().empty())
          throw ConfigError("grid." + it.key(), short_value(it.value()),
                            "must be a non-empty array of values");
        if (sets_seed(it.key()))
          throw ConfigError("grid." + it.key(), short_value(it.value()),
                            "a run's seed is set by the spec's \"seeds\" list, not by the grid "
                            "(it would be overwritten)");
        std::set<std::string> values;
        for (const auto& value : it.value())
          if (!values.insert(canonical_dump(value)).second)
            throw ConfigError("grid." + it.key(), short_value(it.value()),
                              fmt::format("repeats the value {}", canonical_dump(value)));
        grid.emplace_back(it.key(), std::vector<Json>(it.value().begin(), it.value().end()));
      }
    }

    std::vector<int64_t> seeds{0};
    if (top.has("seeds")) {
      const Json& s = top.raw("seeds");
      if (!s.is_array() || s.empty()) top.fail("seeds", "must be a non-empty array of integers");
      seeds.clear();
      for (const auto& v : s) {
        if (!v.is_number_integer()) top.fail("seeds", "must be a non-empty array of integers");
        // get<int64_t> would wrap 2^64 - 1 to -1.
        if (v.is_number_unsigned() &&
            v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
          top.fail("seeds", fmt::format("{} is beyond the integer range (at most {})", v.dump(),
                                        std::numeric_limits<int64_t>::max()));
        if (std::find(seeds.begin(), seeds.end(), v.get<int64_t>()) != seeds.end())
          top.fail("seeds", fmt::format("repeats the seed {}", v.get<int64_t>()));
        seeds.push_back(v.get<int64_t>());
      }
    }
    top.reject_unknown_keys();

    std::vector<std::pair<std::string, Json>> parsed_overrides;
    for (const auto& text : overrides) {
      parsed_overrides.push_back(parse_override(text));
      const auto& [key, value] = parsed_overrides.back();
      if (sets_seed(key))
        throw ConfigError("--set " + key, short_value(value),
                          "a run's seed is set by the spec's \"seeds\" list (it would be "
                          "overwritten)");
    }

    // Expand: every variant crossed with every grid point.
    struct Point {
      std::string variant;
      Json config;
    };
    std::vector<Point> points;
    for (const auto& [vname, vconfig] : variants) points.push_back({vname, vconfig});
    for (const auto& [key, values] : grid) {
      std::vector<Json*> all;
      for (auto& p : points) all.push_back(&p.config);
      bool any = false;
      for (Json* c : all) any = any || find_path(*c, key) != nullptr;
      std::vector<Point> next;
      for (auto& p : points) {
        bool applies = !any || find_path(p.config, key) != nullptr;
        if (!applies) {
          next.push_back(p);
          continue;
        }
        for (const auto& value : values) {
          Point q = p;
          try {
            set_path(q.config, key, value);
          } catch (const ConfigError& e) {
            throw ConfigError("grid." + key, short_value(value), e.message());
          }
          q.variant += fmt::format(" {}={}", last_component(key), label_value(value));
          next.push_back(std::move(q));
        }
      }
      points = std::move(next);
    }
    // Relative data paths of the spec file are relative to its folder, those of --set to the
    // working folder: both become absolute, so the run does not depend on where it started.
    for (auto& p : points) resolve_data_path(p.config, file);
    {
      std::vector<Json*> all;
      for (auto& p : points) all.push_back(&p.config);
      for (const auto& [key, value] : parsed_overrides)
        apply_where_present(all, key, value, "--set " + key);
      for (Json* c : all) resolve_data_path(*c, "");
    }
    // Before the comparison below: a variant that spells out such a default is the same config
    // as one that relies on it.
    for (auto& p : points) write_changed_defaults(p.config);

    // Two labels for one config would train it once and average it under both (or merge the
    // two into one); one label for two configs would average different runs: both are refused.
    std::map<std::string, std::string> label_of_config, config_of_label;
    for (const auto& p : points) {
      const std::string config = canonical_dump(p.config);
      auto [by_config, new_config] = label_of_config.emplace(config, p.variant);
      if (!new_config)
        throw ConfigError(
            "variants", fmt::format("\"{}\" and \"{}\"", by_config->second, p.variant),
            fmt::format("resolve to the same config{}: each would be the other's runs; remove one "
                        "or make them differ",
                        parsed_overrides.empty() ? "" : " (after the --set overrides)"));
      auto [by_label, new_label] = config_of_label.emplace(p.variant, config);
      if (!new_label)
        throw ConfigError("variants", short_value(Json(p.variant)),
                          "labels two different configs (a variant name and a grid point print "
                          "alike): their runs would be averaged as one; rename the variant");
    }

    for (const auto& p : points) {
      for (int64_t seed : seeds) {
        PlannedConfig run;
        run.variant = p.variant;
        run.seed = seed;
        run.config = canonicalize(p.config);
        if (!run.config.is_object())
          throw ConfigError("base", short_value(base), "must be an object");
        run.config["seed"] = seed;
        run.name = fmt::format("{} seed={}", p.variant, seed);
        out.runs.push_back(std::move(run));
      }
    }
    return out;
  } catch (const ConfigError& e) {
    throw e.in_file(file);
  }
}

void resolve_data_path(Json& config, const std::string& relative_to_file) {
  if (!config.is_object()) return;
  auto data = config.find("data");
  if (data == config.end() || !data->is_object()) return;
  auto path = data->find("path");
  if (path == data->end() || !path->is_string() || path->get<std::string>().empty()) return;
  namespace fs = std::filesystem;
  const fs::path given = fs::u8path(path->get<std::string>());
  if (given.is_absolute()) return;
  std::error_code ec;
  const fs::path resolved = fs::absolute(fs::u8path(relative_to_file).parent_path() / given, ec);
  if (!ec) *path = resolved.lexically_normal().u8string();
}

SweepSpec load_spec(const std::string& file, const std::vector<std::string>& overrides) {
  return parse_spec(read_json_file(file), file, overrides);
}

}  // namespace mixlab
