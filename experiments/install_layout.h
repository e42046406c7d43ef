// Where a mixlab binary finds the files that ship with it: the bundled sweep specs and the
// default corpus. Run from the build tree, that is the checkout it was built from (sweeps/,
// data/); installed, it is <prefix>/share/mixlab (sweeps/, data/), found from the executable's
// own path (/proc/self/exe), so any install prefix works and a relocated install still does.
#pragma once

#include <filesystem>
#include <string>

namespace mixlab {

// The running executable, symlinks resolved.
std::filesystem::path executable_path();

// True when the executable sits in the build folder CMake made it in (build/sweep,
// build/mixlab_tests), false for an installed copy.
bool running_from_build_tree();

// The checkout's sweeps/ from the build tree, else <prefix>/share/mixlab/sweeps.
std::filesystem::path bundled_specs_dir();

// Where corpus `name` is found when neither data.path nor $MIXLAB_DATA_DIR says: the
// checkout's data/<name> from the build tree, else <prefix>/share/mixlab/data/<name>.
std::filesystem::path default_corpus_dir(const std::string& name);

}  // namespace mixlab
