// Small helpers shared by the tests: temporary folders, running the real binary.
#pragma once

#include <doctest/doctest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "experiments/config_reader.h"

namespace mixlab::testing {

// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mixlab-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small text corpus under DIR/text: two files, so the split by file has a validation file.
// Returns the folder, for a spec's data.corpus.
inline std::string write_text_corpus(const TempDir& dir) {
  std::filesystem::create_directories(dir / "text");
  std::string a, b;
  for (int i = 0; i < 400; ++i) {
    a += "the quick brown fox " + std::to_string(i * 7 % 13) + " jumps over the lazy dog.\n";
    b += "a stitch in time saves " + std::to_string(i % 9) + " and more.\n";
  }
  write_text(dir / "text/a.txt", a);
  write_text(dir / "text/b.txt", b + a);
  return dir / "text";
}

// A temp folder holding a text corpus, a spec FILE_NAME written by spec_text(corpus), and the
// path of a database not yet made: the start of every test that runs the real binary.
struct SpecFixture {
  TempDir dir;
  std::string corpus, spec, db;
  SpecFixture(const std::string& file_name,
              const std::function<std::string(const std::string&)>& spec_text) {
    corpus = write_text_corpus(dir);
    spec = dir / file_name;
    db = dir / "results/r.db";
    write_text(spec, spec_text(corpus));
  }
};

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Central differences (h = 1e-6, float64) of `objective` against autograd for up to 8 entries
// of each tensor, spread by a stride; zeroes the tensors' gradients first.
inline void check_gradients(const std::function<torch::Tensor()>& objective,
                            const std::vector<torch::Tensor>& tensors) {
  for (const auto& t : tensors)
    if (t.grad().defined()) t.grad().zero_();
  objective().backward();
  const double h = 1e-6;
  for (const auto& tensor : tensors) {
    REQUIRE(tensor.grad().defined());
    auto grad = tensor.grad().clone().view({-1});
    auto flat = tensor.detach().view({-1});
    for (int64_t i = 0; i < std::min<int64_t>(flat.numel(), 8); ++i) {
      const int64_t k = (i * 7919) % flat.numel();
      double original = flat[k].item<double>(), plus, minus;
      {
        torch::NoGradGuard no_grad;
        flat[k] = original + h;
        plus = objective().item<double>();
        flat[k] = original - h;
        minus = objective().item<double>();
        flat[k] = original;
      }
      CHECK(grad[k].item<double>() ==
            doctest::Approx((plus - minus) / (2 * h)).epsilon(1e-6).scale(1e-3));
    }
  }
}

}  // namespace mixlab::testing
