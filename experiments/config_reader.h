// Reading JSON configs with errors that name the file, the key and the value.
//
// Every config object (a run's model/ffn/data/train/eval sections, a sweep spec) is read
// through a ConfigReader: it knows the dotted path of the object it reads, so a bad value
// is reported as "ffn.group_size = 7: ...", and it remembers which keys were read, so a
// key nobody read (a typo) is an error rather than a silently ignored setting.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mixlab {

using Json = nlohmann::json;

// Bad input: the CLI prints it on one line and exits with status 2.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, std::string value, const std::string& message);
  ConfigError(std::string file, std::string key, std::string value, const std::string& message);
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  const std::string& message() const { return message_; }
  // The same error, attributed to a file (kept if one is already named).
  ConfigError in_file(const std::string& file) const;

 private:
  std::string file_, key_, value_, message_;
};

// A value rendered for an error message: strings quoted, long values cut.
std::string short_value(const Json& value);

class ConfigReader {
 public:
  // `object` must outlive the reader; `path` is its dotted location ("" for the root).
  ConfigReader(const Json& object, std::string path);

  bool has(const std::string& key) const;
  const Json& raw(const std::string& key) const;  // throws if missing
  std::string key_path(const std::string& key) const;

  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  ConfigReader child(const std::string& key) const;  // a nested object (must be one)

  // Range checks that report the key and value.
  int64_t get_positive_int(const std::string& key, int64_t fallback) const;
  double get_positive_double(const std::string& key, double fallback) const;
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  // Throws for any key that was never read: unknown keys are typos, not options.
  void reject_unknown_keys() const;

 private:
  const Json* object_;
  std::string path_;
  mutable std::set<std::string> read_keys_;
};

// Canonical JSON: keys sorted, floats with integral values written as integers, so that
// {"lr": 1.0} and {"lr": 1} are the same config and hash the same.
Json canonicalize(const Json& value);
std::string canonical_dump(const Json& value);
// 16 hex digits of FNV-1a/64 over the canonical dump: identity of a run or spec.
std::string content_hash(const Json& value);

// Dotted-path access: "ffn.group_size" inside {"ffn": {"group_size": 8}}.
const Json* find_path(const Json& root, const std::string& dotted);
void set_path(Json& root, const std::string& dotted, const Json& value);

// What a JSON input (a spec, a run config, a --set value) may be. Specs are a few kilobytes;
// the size cap keeps /dev/zero or a FIFO from being read without end, and the depth cap keeps
// nlohmann's recursive dump (used by every error message) from overflowing the stack.
constexpr size_t kMaxJsonBytes = size_t(16) << 20;
constexpr int kMaxJsonDepth = 64;

// Whether JSON text nests arrays and objects deeper than kMaxJsonDepth (brackets inside strings
// do not count): such text is refused before it is parsed.
bool nests_too_deep(const std::string& text);
// Parses JSON text; throws ConfigError naming `source` and `key` (the line, for a file) on bad
// syntax or nesting deeper than kMaxJsonDepth.
Json parse_json_text(const std::string& text, const std::string& source,
                     const std::string& key = "");
// Parses a file into JSON (at most kMaxJsonBytes of it); throws ConfigError naming the file and
// the line on bad syntax.
Json read_json_file(const std::string& file);

// Writes into a run config the defaults whose meaning changed after runs were recorded under
// them (expert_choice's `output_norm`, top_k's `balance`), where the config relies on them. A
// run's identity is the hash of its config: written out, the new meaning gets a new hash, and a
// run recorded before the change is never taken for one of the new kind.
void write_changed_defaults(Json& config);

}  // namespace mixlab
