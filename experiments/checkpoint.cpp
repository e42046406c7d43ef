#include "experiments/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "results/fault_injection.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {
void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}
}  // namespace

void fsync_parent_dir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);
}

void save_checkpoint(const std::string& path, const CheckpointState& state,
                     torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  fs::create_directories(fs::path(path).parent_path());
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("step", c10::IValue(state.step));
  archive.write("wall_s", c10::IValue(state.wall_s));
  archive.write("config_hash", c10::IValue(state.config_hash));
  archive.write("interval_steps", c10::IValue(state.interval_steps));
  archive.write("interval_sums",
                c10::IValue(std::vector<double>{state.loss_sum, state.aux_sum, state.norm_sum,
                                                state.interval_s}));
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  fsync_path(tmp, O_RDONLY);
  fault::point("checkpoint");
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": cannot move the new checkpoint into place");
  fsync_parent_dir(path);
}

CheckpointState inspect_checkpoint(const std::string& path, const std::string& expected_hash) {
  CheckpointState state;
  try {
    // load_from reads and deserialises every record (tensors included), so a truncated or
    // damaged file fails here, not halfway through a resumed run.
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::kCPU);
    c10::IValue hash, step;
    archive.read("config_hash", hash);
    state.config_hash = hash.toStringRef();
    archive.read("step", step);
    state.step = step.toInt();
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError(path + ": not a usable checkpoint (" + what.substr(0, what.find('\n')) +
                          "); delete it to train the run again from step 0");
  }
  if (state.config_hash != expected_hash)
    throw CheckpointError(path + ": checkpoint of config " + state.config_hash + ", expected " +
                          expected_hash);
  return state;
}

CheckpointState load_checkpoint(const std::string& path, const std::string& expected_hash,
                                torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                const torch::Device& device) {
  CheckpointState state;
  try {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from(path, device);
    c10::IValue step, wall, hash;
    archive.read("config_hash", hash);
    state.config_hash = hash.toStringRef();
    if (state.config_hash != expected_hash)
      throw CheckpointError(path + ": checkpoint of config " + state.config_hash + ", expected " +
                            expected_hash);
    archive.read("step", step);
    archive.read("wall_s", wall);
    state.step = step.toInt();
    state.wall_s = wall.toDouble();
    c10::IValue interval_steps, sums;
    archive.read("interval_steps", interval_steps);
    archive.read("interval_sums", sums);
    state.interval_steps = interval_steps.toInt();
    auto values = sums.toDoubleVector();
    if (values.size() != 4) throw CheckpointError(path + ": malformed interval sums");
    state.loss_sum = values[0];
    state.aux_sum = values[1];
    state.norm_sum = values[2];
    state.interval_s = values[3];
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model.load(model_archive);
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError(path + ": not a usable checkpoint (" + what.substr(0, what.find('\n')) +
                          "); delete it to train the run again from step 0");
  }
  return state;
}

}  // namespace mixlab
