#include "experiments/config_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace mixlab {

namespace {
std::string compose(const std::string& file, const std::string& key, const std::string& value,
                    const std::string& message) {
  std::string out;
  if (!file.empty()) out += file + ": ";
  if (!key.empty()) out += key + (value.empty() ? "" : " = " + value) + ": ";
  return out + message;
}

const char* type_name(const Json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  return "null";
}
}  // namespace

ConfigError::ConfigError(std::string key, std::string value, const std::string& message)
    : ConfigError("", std::move(key), std::move(value), message) {}

ConfigError::ConfigError(std::string file, std::string key, std::string value,
                         const std::string& message)
    : std::runtime_error(compose(file, key, value, message)),
      file_(std::move(file)),
      key_(std::move(key)),
      value_(std::move(value)),
      message_(message) {}

ConfigError ConfigError::in_file(const std::string& file) const {
  if (!file_.empty()) return *this;
  return ConfigError(file, key_, value_, message_);
}

std::string short_value(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

ConfigReader::ConfigReader(const Json& object, std::string path)
    : object_(&object), path_(std::move(path)) {
  if (!object.is_object())
    throw ConfigError(path_.empty() ? "(root)" : path_, short_value(object), "must be an object");
}

bool ConfigReader::has(const std::string& key) const {
  read_keys_.insert(key);
  return object_->contains(key);
}

std::string ConfigReader::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

const Json& ConfigReader::raw(const std::string& key) const {
  read_keys_.insert(key);
  auto it = object_->find(key);
  if (it == object_->end()) throw ConfigError(key_path(key), "", "required key is missing");
  return *it;
}

void ConfigReader::fail(const std::string& key, const std::string& message) const {
  auto it = object_->find(key);
  throw ConfigError(key_path(key), it == object_->end() ? "" : short_value(*it), message);
}

int64_t ConfigReader::get_int(const std::string& key) const {
  const Json& v = raw(key);
  // get<int64_t> would wrap 2^64 - 1 to -1: a value beyond int64 is refused, not changed.
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    fail(key, "is beyond the integer range (at most 9223372036854775807)");
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
      std::fabs(v.get<double>()) < 9e15)
    return static_cast<int64_t>(v.get<double>());
  fail(key, fmt::format("must be an integer, not {}", type_name(v)));
}

int64_t ConfigReader::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double ConfigReader::get_double(const std::string& key) const {
  const Json& v = raw(key);
  if (!v.is_number()) fail(key, fmt::format("must be a number, not {}", type_name(v)));
  double d = v.get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite");
  return d;
}

double ConfigReader::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool ConfigReader::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const Json& v = raw(key);
  if (!v.is_boolean()) fail(key, fmt::format("must be true or false, not {}", type_name(v)));
  return v.get<bool>();
}

std::string ConfigReader::get_string(const std::string& key) const {
  const Json& v = raw(key);
  if (!v.is_string()) fail(key, fmt::format("must be a string, not {}", type_name(v)));
  return v.get<std::string>();
}

std::string ConfigReader::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

ConfigReader ConfigReader::child(const std::string& key) const {
  const Json& v = raw(key);
  if (!v.is_object()) fail(key, fmt::format("must be an object, not {}", type_name(v)));
  return ConfigReader(v, key_path(key));
}

int64_t ConfigReader::get_positive_int(const std::string& key, int64_t fallback) const {
  int64_t v = get_int(key, fallback);
  if (v <= 0) fail(key, "must be a positive integer");
  return v;
}

double ConfigReader::get_positive_double(const std::string& key, double fallback) const {
  double v = get_double(key, fallback);
  if (!(v > 0)) fail(key, "must be positive");
  return v;
}

void ConfigReader::reject_unknown_keys() const {
  for (auto it = object_->begin(); it != object_->end(); ++it) {
    if (!read_keys_.count(it.key()))
      throw ConfigError(key_path(it.key()), short_value(it.value()), "unknown key");
  }
}

Json canonicalize(const Json& value) {
  if (value.is_object()) {
    Json out = Json::object();
    for (auto it = value.begin(); it != value.end(); ++it) out[it.key()] = canonicalize(it.value());
    return out;
  }
  if (value.is_array()) {
    Json out = Json::array();
    for (const auto& v : value) out.push_back(canonicalize(v));
    return out;
  }
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15)
      return Json(static_cast<int64_t>(d));
  }
  if (value.is_number_unsigned()) return Json(value.get<int64_t>());
  return value;
}

std::string canonical_dump(const Json& value) {
  return canonicalize(value).dump();
}

std::string content_hash(const Json& value) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : canonical_dump(value)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

const Json* find_path(const Json& root, const std::string& dotted) {
  const Json* node = &root;
  std::stringstream parts(dotted);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

void set_path(Json& root, const std::string& dotted, const Json& value) {
  if (dotted.empty() || dotted.front() == '.' || dotted.back() == '.' ||
      dotted.find("..") != std::string::npos)
    throw ConfigError(dotted, short_value(value), "is not a dotted key path");
  Json* node = &root;
  std::stringstream parts(dotted);
  std::string part;
  std::vector<std::string> names;
  while (std::getline(parts, part, '.')) names.push_back(part);
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    Json& next = (*node)[names[i]];
    if (next.is_null()) next = Json::object();
    if (!next.is_object())
      throw ConfigError(dotted, short_value(value),
                        fmt::format("'{}' is not an object in the config", names[i]));
    node = &next;
  }
  (*node)[names.back()] = value;
}

namespace {
// The byte offset at which `text` first nests arrays and objects deeper than `limit` (brackets
// inside strings do not count), or npos. A scan of the text rather than a parser callback, so
// nothing deep is ever built.
size_t too_deep_at(const std::string& text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string::npos;
}

size_t line_of(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n');
}
}  // namespace

bool nests_too_deep(const std::string& text) {
  return too_deep_at(text, kMaxJsonDepth) != std::string::npos;
}

Json parse_json_text(const std::string& text, const std::string& source, const std::string& key) {
  // A file's errors give a line; a one-line value (--set) has only one.
  const bool file = key.empty();
  auto where = [&](size_t offset) {
    return file ? fmt::format(" at line {}", line_of(text, offset)) : std::string();
  };
  const std::string value = file ? "" : short_value(Json(text.substr(0, 80)));
  if (size_t at = too_deep_at(text, kMaxJsonDepth); at != std::string::npos)
    throw ConfigError(source, key, value,
                      fmt::format("JSON nested deeper than {} levels{}", kMaxJsonDepth, where(at)));
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // nlohmann reports a byte offset; a line number is what a person can find.
    throw ConfigError(source, key, value,
                      fmt::format("malformed JSON{}: {}", where(e.byte), e.what()));
  } catch (const Json::exception& e) {
    // Valid syntax the parser still refuses: a number beyond a double (1e310).
    throw ConfigError(source, key, value, fmt::format("unreadable JSON: {}", e.what()));
  }
}

Json read_json_file(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw ConfigError(file, "", "", "is a folder, not a JSON file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file, "", "", "cannot open the file");
  // Read at most one chunk past the cap: /dev/zero or a FIFO must not be read without end.
  std::string text;
  char chunk[1 << 16];
  while (text.size() <= kMaxJsonBytes && in.read(chunk, sizeof chunk).gcount() > 0)
    text.append(chunk, static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxJsonBytes)
    throw ConfigError(
        file, "", "",
        fmt::format("is larger than {} MiB: not a spec or config", kMaxJsonBytes >> 20));
  return parse_json_text(text, file);
}

void write_changed_defaults(Json& config) {
  struct ChangedDefault {
    const char *ffn_type, *key;
    Json value;
  };
  // expert_choice gained its output LayerNorm (on) and top_k's balance loss came to count every
  // choice, both on 2026-12-01; configs recorded before say neither key.
  static const std::vector<ChangedDefault> changed = {{"expert_choice", "output_norm", true},
                                                      {"top_k", "balance", "all_choices"}};
  if (!config.is_object()) return;
  auto ffn = config.find("ffn");
  if (ffn == config.end() || !ffn->is_object()) return;
  auto type = ffn->find("type");
  if (type == ffn->end() || !type->is_string()) return;
  for (const auto& d : changed)
    if (*type == d.ffn_type && !ffn->contains(d.key)) (*ffn)[d.key] = d.value;
}

}  // namespace mixlab
