#include "experiments/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "results/environment_error.h"
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

namespace {
// "N MiB free" on the file system holding `path`, for an error message.
std::string free_space(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) return "free space unknown";
  return fmt::format("{:.1f} MiB free there",
                     double(fs.f_bavail) * double(fs.f_frsize) / (1024.0 * 1024.0));
}

std::string checkpoint_folder(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

CheckpointError unusable(const std::string& path, const c10::Error& e) {
  std::string what = e.what_without_backtrace();
  return CheckpointError(path + ": not a usable checkpoint (" + what.substr(0, what.find('\n')) +
                         "); delete it to train the run again from step 0");
}
}  // namespace

std::string write_checkpoint_file(const std::string& path, const CheckpointState& state,
                                  torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  std::random_device rd;
  const std::string tmp = fmt::format("{}.tmp.{}.{:08x}", path, ::getpid(), rd());
  try {
    fs::create_directories(fs::path(path).parent_path());
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    model.save(model_archive);
    optimizer.save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("step", c10::IValue(state.step));
    archive.write("wall_s", c10::IValue(state.wall_s));
    archive.write("config_hash", c10::IValue(state.config_hash));
    archive.write("database_id", c10::IValue(state.database_id));
    archive.write("run_id", c10::IValue(state.run_id));
    archive.write("interval_steps", c10::IValue(state.interval_steps));
    archive.write("interval_sums",
                  c10::IValue(std::vector<double>{state.loss_sum, state.aux_sum, state.norm_sum,
                                                  state.interval_s}));
    // LibTorch's own file writer cannot fail cleanly: on a full disk its destructor throws
    // during unwinding and the process aborts. So the bytes come here and are written with
    // write(2); after a failed write the rest is discarded and the errno reported at the end.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(std::strerror(errno));
    int write_errno = 0;
    archive.save_to([&](const void* data, size_t size) -> size_t {
      const char* bytes = static_cast<const char*>(data);
      for (size_t done = 0; write_errno == 0 && done < size;) {
        const ssize_t n = ::write(fd, bytes + done, size - done);
        if (n < 0 && errno != EINTR) write_errno = errno;
        if (n > 0) done += size_t(n);
      }
      return size;
    });
    if (write_errno == 0 && ::fsync(fd) != 0) write_errno = errno;
    if (::close(fd) != 0 && write_errno == 0) write_errno = errno;
    if (write_errno != 0) throw std::runtime_error(std::strerror(write_errno));
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto* c10_error = dynamic_cast<const c10::Error*>(&e))
      what = c10_error->what_without_backtrace();
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw EnvironmentError(fmt::format("{}: cannot write the checkpoint ({}; {})", path,
                                       what.substr(0, what.find('\n')),
                                       free_space(checkpoint_folder(path))));
  }
  fault::point("checkpoint");
  return tmp;
}

void move_checkpoint_into_place(const std::string& temporary, const std::string& path) {
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw EnvironmentError(
        fmt::format("{}: cannot move the new checkpoint into place: {}", path, why));
  }
  fsync_parent_dir(path);
}

void save_checkpoint(const std::string& path, const CheckpointState& state,
                     torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  move_checkpoint_into_place(write_checkpoint_file(path, state, model, optimizer), path);
}

void remove_checkpoint_temporaries(const std::string& path) {
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp";
  std::error_code ec;
  for (fs::directory_iterator it(checkpoint_folder(path), ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().filename().string().rfind(prefix, 0) == 0) fs::remove(it->path(), ec);
}

namespace {
// Reads the records every checkpoint has; those added later read as empty when absent.
void read_identity(torch::serialize::InputArchive& archive, CheckpointState& state) {
  c10::IValue hash, step, database, run;
  archive.read("config_hash", hash);
  state.config_hash = hash.toStringRef();
  archive.read("step", step);
  state.step = step.toInt();
  if (archive.try_read("database_id", database)) state.database_id = database.toStringRef();
  if (archive.try_read("run_id", run)) state.run_id = run.toInt();
}
}  // namespace

std::string checkpoint_mismatch(const CheckpointState& state, const CheckpointIdentity& expected,
                                std::optional<int64_t> recorded_step) {
  if (state.config_hash != expected.config_hash)
    return fmt::format("it is config {}'s, not {}'s", state.config_hash, expected.config_hash);
  if (state.database_id != expected.database_id)
    return fmt::format("it was written for database {}, not this one ({})",
                       state.database_id.empty() ? "(none)" : state.database_id,
                       expected.database_id);
  if (state.run_id != expected.run_id)
    return fmt::format("it was written for run {}, not run {}", state.run_id, expected.run_id);
  if (!recorded_step)
    return fmt::format("it holds step {} but the database records no checkpoint of the run",
                       state.step);
  if (*recorded_step != state.step)
    return fmt::format("it holds step {} but the database records step {}", state.step,
                       *recorded_step);
  return "";
}

CheckpointState inspect_checkpoint(const std::string& path) {
  CheckpointState state;
  try {
    // load_from reads and deserialises every record (tensors included), so a truncated or
    // damaged file fails here, not halfway through a resumed run.
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::kCPU);
    read_identity(archive, state);
  } catch (const c10::Error& e) {
    throw unusable(path, e);
  }
  return state;
}

CheckpointState load_checkpoint(const std::string& path, const CheckpointIdentity& expected,
                                torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                const torch::Device& device) {
  CheckpointState state;
  try {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from(path, device);
    read_identity(archive, state);
    // The step is the caller's to check against its database (checkpoint_mismatch).
    const std::string mismatch = checkpoint_mismatch(state, expected, state.step);
    if (!mismatch.empty()) throw CheckpointError(path + ": not this run's checkpoint: " + mismatch);
    c10::IValue wall;
    archive.read("wall_s", wall);
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
    throw unusable(path, e);
  }
  return state;
}

}  // namespace mixlab
