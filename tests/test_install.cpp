// `sweep run temperature_sweep.json` as users type it: specs found by name (build tree and
// installed), `sweep specs`, `sweep --version`, `cmake --install` into a temporary prefix, and
// the Debian package of `cpack -G DEB`. Every case runs the real binaries.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <algorithm>
#include <regex>

#include "install_test_paths.h"
#include "sweeps/spec.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSweep = MIXLAB_SWEEP_BIN;
const fs::path kSource = MIXLAB_SOURCE_DIR;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<fs::path> shipped_specs() {
  std::vector<fs::path> specs;
  for (const auto& entry : fs::directory_iterator(kSource / "sweeps"))
    if (entry.path().extension() == ".json") specs.push_back(entry.path());
  std::sort(specs.begin(), specs.end());
  return specs;
}

// Runs `command` in `folder`, with $MIXLAB_DATA_DIR unset unless `env` sets it.
testing::CommandResult run_in(const fs::path& folder, const std::string& command,
                              const std::string& env = "") {
  return run_command("cd '" + folder.string() + "' && env -u MIXLAB_DATA_DIR " + env + " " +
                     command);
}

// A spec that trains in a second on the default corpus (no data.path): 2 runs of 4 steps.
std::string tiny_brown_spec(const std::string& name) {
  return R"({"name": ")" + name + R"(", "description": "Install check. Two tiny runs.",
    "base": {
      "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16},
      "ffn": {"type": "mot", "n_experts": 4, "group_size": 4, "expert_size": "flop_matched", "d_ff": 32},
      "data": {"corpus": "brown"},
      "train": {"steps": 4, "batch_size": 8, "log_every": 2, "checkpoint_every": 4},
      "eval": {"every": 4, "batches": 1}
    },
    "variants": [{"name": "dense", "ffn": {"type": "dense", "d_ff": 32}}, {"name": "mot"}],
    "seeds": [0]})";
}

int64_t sqlite_count(const std::string& db, const std::string& sql) {
  return std::atoll(run_command("sqlite3 '" + db + "' \"" + sql + "\"").output.c_str());
}

}  // namespace

TEST_CASE("sweep --version names the version, the commit, LibTorch, CUDA and the BLAS") {
  // OPENBLAS_NUM_THREADS=1 shows that the thread count is asked of the library, not guessed.
  auto r = run_command("OPENBLAS_NUM_THREADS=1 " + kSweep + " --version");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(contains(r.output, std::string("mixlab ") + MIXLAB_PROJECT_VERSION + " (commit "));
  const std::string git = "git -C '" + kSource.string() + "' ";
  if (run_command(git + "rev-parse HEAD").status != 0) {
    CHECK(contains(r.output, "(commit unknown, "));  // built from a tarball
  } else {
    std::smatch commit;
    REQUIRE(std::regex_search(r.output, commit, std::regex("commit ([0-9a-f]{12})")));
    // The commit built: of this checkout, HEAD or before it (a commit since needs a rebuild).
    CHECK(run_command(git + "merge-base --is-ancestor " + commit[1].str() + " HEAD").status == 0);
  }
  CHECK(contains(r.output, std::string("LibTorch ") + TORCH_VERSION));
  CHECK(contains(r.output,
                 std::string("CUDA available: ") + (torch::cuda::is_available() ? "yes" : "no")));
  if (dlsym(RTLD_DEFAULT, "openblas_get_config") != nullptr) {
    CHECK(contains(r.output, "BLAS: OpenBLAS "));
    CHECK(contains(r.output, "threads: 1\n"));
    auto two = run_command("OPENBLAS_NUM_THREADS=2 " + kSweep + " --version");
    CHECK(contains(two.output, "threads: 2\n"));
  }
}

TEST_CASE("sweep specs lists every bundled spec with its description and run count") {
  auto r = run_command(kSweep + " specs");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(contains(r.output, (kSource / "sweeps").string()));
  const auto specs = shipped_specs();
  REQUIRE(specs.size() >= 5);
  for (const auto& path : specs) {
    const SweepSpec spec = load_spec(path.string());
    std::smatch row;
    const std::regex line("\n" + path.filename().string() + " +([0-9]+)  ([^\n]*)");
    REQUIRE_MESSAGE(std::regex_search(r.output, row, line), path.filename().string());
    CHECK(std::stoul(row[1].str()) == spec.runs.size());
    CHECK(spec.description.rfind(row[2].str(), 0) == 0);  // the description's opening
    CHECK(row[2].str().size() > 20);
  }
  // Counted by hand from the file: 4 variants x 2 seeds, no grid.
  CHECK(std::regex_search(r.output, std::regex("\ntemperature_sweep.json +8  MoT controller")));
  auto full = run_command(kSweep + " specs --full");
  CHECK(contains(full.output, "so every run stays within a fifth of one."));
}

TEST_CASE("a bundled spec runs by name from any folder, and the run names the file it used") {
  TempDir empty;
  for (const std::string name : {"temperature_sweep.json", "temperature_sweep"}) {
    auto r = run_in(empty.path(), kSweep + " run " + name + " --dry-run");
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(contains(r.output, "spec: " + (kSource / "sweeps/temperature_sweep.json").string()));
    CHECK(contains(r.output, "sweep temperature_sweep: 8 runs (dry run"));
  }
  CHECK(fs::is_empty(empty.path()));
  // A folder of that name is not a spec file: the bundled spec still is.
  fs::create_directories(empty.path() / "temperature_sweep");
  auto folder = run_in(empty.path(), kSweep + " run temperature_sweep --dry-run");
  CHECK(folder.status == 0);
  CHECK(contains(folder.output, "spec: " + (kSource / "sweeps/temperature_sweep.json").string()));
  // sweep submit takes its SPEC the same way (--dry-run writes its job script, nothing else).
  TempDir cluster;
  auto submit = run_in(cluster.path(), kSweep + " submit temperature_sweep --dry-run");
  INFO(submit.output);
  CHECK(submit.status == 0);
  CHECK(contains(submit.output, "spec: " + (kSource / "sweeps/temperature_sweep.json").string()));
  // A path with a folder means that file, never a bundled spec.
  auto r = run_in(empty.path(), kSweep + " run elsewhere/temperature_sweep.json --dry-run");
  CHECK(r.status == 2);
}

TEST_CASE("an unknown spec name: exit 2, one line listing the bundled specs, nothing written") {
  TempDir empty;
  auto r = run_in(empty.path(), kSweep + " run temperature_swep.json");
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(contains(r.output, "error: temperature_swep.json: no such file, and no bundled spec"));
  for (const auto& path : shipped_specs()) CHECK(contains(r.output, path.filename().string()));
  CHECK(fs::is_empty(empty.path()));
}

TEST_CASE("a local file shadowing a bundled spec's name wins, and the run says so") {
  TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  fs::create_directories(dir.path() / "work");
  testing::write_text(dir / "work/temperature_sweep.json",
                      R"({"name": "local_one", "base": {"model": {"d_model": 16, "n_layers": 1,
      "n_heads": 2, "seq_len": 16}, "ffn": {"type": "dense", "d_ff": 32},
      "data": {"corpus": "text", "path": ")" +
                          corpus + R"("}, "train": {"steps": 2, "batch_size": 4},
      "eval": {"every": 2, "batches": 1}},
      "seeds": [0, 1, 2]})");
  auto r = run_in(dir.path() / "work", kSweep + " run temperature_sweep.json --dry-run");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(contains(r.output, "spec: using the local file " + (dir / "work/temperature_sweep.json") +
                               ", not the bundled spec " +
                               (kSource / "sweeps/temperature_sweep.json").string()));
  CHECK(contains(r.output, "sweep local_one: 3 runs (dry run"));
  // The bundled file itself, named by its path, is no shadow.
  auto same = run_in(kSource, kSweep + " run sweeps/temperature_sweep.json --dry-run");
  CHECK(same.status == 0);
  CHECK(!contains(same.output, "spec:"));
}

TEST_CASE(
    "cmake --install into a temporary prefix: the installed sweep runs a spec by name from "
    "an empty folder, on the corpus installed with it") {
  TempDir prefix, work;
  auto install =
      run_command(std::string(MIXLAB_CMAKE_BIN) + " --install '" MIXLAB_BUILD_DIR "' --prefix '" +
                  prefix.path().string() + "'");
  INFO(install.output);
  REQUIRE(install.status == 0);
  const fs::path bin = prefix.path() / "bin/sweep", share = prefix.path() / "share/mixlab";
  REQUIRE(fs::is_regular_file(bin));
  for (const auto& spec : shipped_specs())
    CHECK(testing::read_text((share / "sweeps" / spec.filename()).string()) ==
          testing::read_text(spec.string()));
  CHECK(testing::read_text((share / "schema.sql").string()) ==
        testing::read_text((kSource / "results/schema.sql").string()));

  const fs::path brown = share / "data/brown";
  if (fs::exists(kSource / "data/brown/.complete")) {
    CHECK(testing::read_text((brown / "ca01").string()) ==
          testing::read_text((kSource / "data/brown/ca01").string()));
  } else {
    MESSAGE("no data/brown in the checkout (scripts/setup.sh fetches it): a small stand-in");
    fs::create_directories(brown);
    for (const std::string name : {"ca01", "ca02", "cb01"}) {
      std::string text;
      for (int i = 0; i < 300; ++i)
        text += "The/at jury/nn said/vbd " + std::to_string(i) + "/cd\n";
      testing::write_text((brown / name).string(), text);
    }
  }
  testing::write_text((share / "sweeps/install_check.json").string(),
                      tiny_brown_spec("install_check"));

  auto specs = run_in(work.path(), bin.string() + " specs");
  CHECK(contains(specs.output, (share / "sweeps").lexically_normal().string()));
  CHECK(contains(specs.output, "install_check.json"));

  auto r = run_in(work.path(), bin.string() + " run install_check.json --threads 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(contains(r.output, "spec: " + (share / "sweeps/install_check.json").string()));
  const std::string db = (work.path() / "results/results.db").string();
  REQUIRE(fs::exists(db));
  CHECK(sqlite_count(db, "SELECT COUNT(*) FROM runs WHERE status = 'finished'") == 2);

  // $MIXLAB_DATA_DIR wins over the installed corpus...
  auto elsewhere = run_in(work.path(), bin.string() + " run install_check.json --dry-run",
                          "MIXLAB_DATA_DIR=/nonexistent");
  CHECK(elsewhere.status == 2);
  CHECK(contains(elsewhere.output, "/nonexistent/brown"));
  // ... and the installed binary reads the share folder, never the checkout's data/.
  fs::remove_all(brown);
  auto gone = run_in(work.path(), bin.string() + " run install_check.json --dry-run");
  CHECK(gone.status == 2);
  CHECK(contains(gone.output, "the Brown corpus is not at " + brown.string()));
}

TEST_CASE(
    "cpack -G DEB: the packages hold the binary, the specs, the schema and the corpus, "
    "declare their dependencies, and run a spec by name as unpacked") {
  if (run_command("command -v dpkg-deb && command -v dpkg-shlibdeps").status != 0) {
    MESSAGE("skipped: no dpkg-deb or dpkg-shlibdeps (dpkg-dev) on this machine");
    return;
  }
  TempDir out, root, work;
  auto pack = run_command(std::string(MIXLAB_CPACK_BIN) +
                          " -G DEB --config '" MIXLAB_BUILD_DIR "/CPackConfig.cmake' -B '" +
                          out.path().string() + "'");
  INFO(pack.output);
  REQUIRE(pack.status == 0);
  const std::string version = MIXLAB_PROJECT_VERSION;
  const std::string deb = (out.path() / ("mixlab_" + version + "_amd64.deb")).string();
  REQUIRE(fs::exists(deb));

  auto contents = run_command("dpkg-deb -c '" + deb + "'");
  REQUIRE(contents.status == 0);
  CHECK(contains(contents.output, "./usr/bin/sweep\n"));
  CHECK(contains(contents.output, "./usr/share/mixlab/schema.sql\n"));
  for (const auto& spec : shipped_specs())
    CHECK(
        contains(contents.output, "./usr/share/mixlab/sweeps/" + spec.filename().string() + "\n"));
  CHECK(!contains(contents.output, "/data/brown/"));

  auto fields = run_command("dpkg-deb -f '" + deb + "' Depends Recommends");
  INFO(fields.output);
  for (const std::string library :
       {"libtorch1.13", "libsqlite3-0", "libfmt9", "libopenblas0-pthread"})
    CHECK(contains(fields.output, library));
  CHECK(contains(fields.output, "Recommends: mixlab-brown"));
  REQUIRE(run_command("dpkg-deb -x '" + deb + "' '" + root.path().string() + "'").status == 0);

  const std::string corpus_deb = (out.path() / ("mixlab-brown_" + version + "_all.deb")).string();
  if (!fs::exists(kSource / "data/brown/.complete")) {
    MESSAGE("no data/brown in the checkout (scripts/setup.sh fetches it): no corpus package");
    return;
  }
  REQUIRE(fs::exists(corpus_deb));
  CHECK(contains(run_command("dpkg-deb -c '" + corpus_deb + "'").output,
                 "./usr/share/mixlab/data/brown/ca01\n"));
  REQUIRE(run_command("dpkg-deb -x '" + corpus_deb + "' '" + root.path().string() + "'").status ==
          0);
  // The unpacked tree finds its specs and its corpus under its own usr/share/mixlab.
  auto r = run_in(work.path(), (root.path() / "usr/bin/sweep").string() +
                                   " run temperature_sweep.json --dry-run");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(contains(
      r.output,
      "spec: " + (root.path() / "usr/share/mixlab/sweeps/temperature_sweep.json").string()));
  CHECK(fs::is_empty(work.path()));
}
