#include "experiments/install_layout.h"

#include "build_info.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {
fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  return ec ? p : c;
}

// <prefix>/share/mixlab of an installed executable <prefix>/bin/sweep.
fs::path installed_share_dir() {
  return (executable_path().parent_path() / MIXLAB_SHARE_FROM_BIN).lexically_normal();
}
}  // namespace

fs::path executable_path() {
  return canonical_or_self("/proc/self/exe");
}

bool running_from_build_tree() {
  static const bool in_build_tree =
      executable_path().parent_path() == canonical_or_self(MIXLAB_BINARY_DIR);
  return in_build_tree;
}

fs::path bundled_specs_dir() {
  return running_from_build_tree() ? fs::path(MIXLAB_SOURCE_DIR) / "sweeps"
                                   : installed_share_dir() / "sweeps";
}

fs::path default_corpus_dir(const std::string& name) {
  return running_from_build_tree() ? fs::path(MIXLAB_SOURCE_DIR) / "data" / name
                                   : installed_share_dir() / "data" / name;
}

}  // namespace mixlab
