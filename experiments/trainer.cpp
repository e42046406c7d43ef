#include "experiments/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "experiments/checkpoint.h"
#include "experiments/corpus.h"
#include "experiments/decode_cost.h"
#include "experiments/schedule.h"
#include "experiments/task_data.h"
#include "experiments/train_step.h"
#include "layers/mot.h"  // kMinTemperature
#include "layers/torch_compat.h"

namespace mixlab {

namespace {

using Clock = std::chrono::steady_clock;

// What made a loss non-finite, where a layer can tell: a controller temperature (recorded by
// the layer in this logging step's forward pass) that collapsed below what float32 logits / T
// survive. Without it the message would point at the learning rate alone.
std::string divergence_cause(const std::vector<FfnLayer>& layers) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& names = layers[i]->stat_names();
    const auto it = std::find(names.begin(), names.end(), "temperature");
    if (it == names.end() || !layers[i]->stat_values().defined()) continue;
    const double t = layers[i]->stat_values()[it - names.begin()].item<double>();
    if (!std::isfinite(t) || t < kMinTemperature)
      return fmt::format(
          ": layer {}'s controller temperature is {:.3g}, below {:g}, so its logits / T "
          "overflow float32 (a fixed temperature that small is refused; a learned one collapsed: "
          "fix it, start learning it later or lower the lr)",
          i, t, kMinTemperature);
  }
  return "";
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

Metrics evaluate(Gpt& model, const std::vector<std::pair<torch::Tensor, torch::Tensor>>& batches,
                 const std::vector<std::string>& modes, bool autocast) {
  Metrics out;
  torch::NoGradGuard no_grad;
  // A bf16 run is evaluated in the precision it trains in (autocast_on).
  compat::AutocastGuard autocast_guard(batches.front().first.device(), autocast);
  model->eval();
  for (const auto& mode : modes) {
    if (!model->knows_eval_mode(mode)) continue;
    for (const auto& layer : model->ffn_layers()) layer->set_eval_mode(mode);
    auto total = torch::zeros({}, torch::TensorOptions().device(batches.front().first.device()));
    for (const auto& [inputs, targets] : batches) total += model->loss(inputs, targets).detach();
    const double loss = total.item<double>() / double(batches.size());
    const std::string prefix = mode == "mixed" ? "eval" : "eval_" + mode;
    out.emplace_back(prefix + "/loss", loss);
    out.emplace_back(prefix + "/ppl", std::exp(loss));
  }
  for (const auto& layer : model->ffn_layers()) layer->set_eval_mode("mixed");
  model->train();
  return out;
}

TrainResult train_run(const RunConfig& config, const TrainOptions& options, TrainHooks& hooks) {
  const TrainConfig& tc = config.train;
  const torch::Device device = options.device;
  // data.corpus "synthetic": batches and evaluation come from the recall task, not a corpus.
  std::unique_ptr<TaskData> task;
  if (config.data.corpus == "synthetic")
    task = std::make_unique<TaskData>(config.data.task, config.model.seq_len, tc.batch_size,
                                      config.seed, device);
  std::shared_ptr<const TokenCorpus> corpus = task ? nullptr : load_corpus(config.data);

  torch::manual_seed(static_cast<uint64_t>(config.seed));
  Gpt model(config.model, config.ffn);
  model->to(device);
  model->train();
  // "bf16" means bf16 autocast on CUDA; a CPU run trains in float32, so what a CPU sweep
  // measures does not depend on whether its CPU has bf16 instructions (README, Performance),
  // unless train.autocast_cpu asks for bf16 there too. Evaluation runs in the same precision.
  TrainConfig step_config = tc;
  if (!autocast_on(tc, device)) step_config.precision = "fp32";
  TrainStep train_step(model, step_config, device);
  torch::optim::Optimizer& optimizer = train_step.optimizer();

  std::optional<WindowSampler> sampler;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> validation;
  if (corpus) {
    sampler.emplace(corpus->train, tc.batch_size, config.model.seq_len,
                    static_cast<uint64_t>(config.seed));
    for (auto& b : validation_batches(corpus->validation, tc.batch_size, config.model.seq_len,
                                      config.eval.batches, batch_rows_mix(config)))
      validation.emplace_back(b.inputs.to(device), b.targets.to(device));
  }
  auto run_evaluation = [&] {
    return task ? task->evaluate(model, config.eval.modes, autocast_on(tc, device))
                : evaluate(model, validation, config.eval.modes, autocast_on(tc, device));
  };

  int64_t step = 0;
  double wall_s = 0;
  CheckpointState resumed;
  const CheckpointIdentity identity{config.hash, options.database_id, options.run_id};
  if (options.resume && !options.checkpoint_path.empty() &&
      std::filesystem::exists(options.checkpoint_path)) {
    resumed = load_checkpoint(options.checkpoint_path, identity, *model, optimizer, device);
    step = resumed.step;
    wall_s = resumed.wall_s;
    hooks.on_resume(step);
  }

  RunFacts facts;
  facts.device = device.str();
  facts.torch_version = compat::torch_version();
  facts.corpus = task ? task->description() : corpus->description;
  facts.cost = model->cost();
  // A synthetic run has no training set to pass over (every batch is generated): 0 tokens,
  // 0 passes.
  facts.train_tokens = task ? 0 : corpus->train.numel();
  hooks.on_start(facts);

  const double tokens_per_step = double(tc.batch_size * config.model.seq_len);
  auto passes_at = [&](int64_t s) {
    return facts.train_tokens > 0 ? double(s) * tokens_per_step / double(facts.train_tokens) : 0.0;
  };
  auto zeros = [&] { return torch::zeros({}, torch::TensorOptions().device(device)); };
  train_step.set_sums(resumed.loss_sum, resumed.aux_sum, resumed.norm_sum);
  torch::Tensor &loss_sum = train_step.loss_sum, &aux_sum = train_step.aux_sum,
                &norm_sum = train_step.norm_sum;
  int64_t interval_steps = resumed.interval_steps, last_checkpoint = step;
  auto interval_start = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(resumed.interval_s));

  // At a logging step the interval sums are zero; between them (a stop) they are saved too.
  auto checkpoint = [&](int64_t s) {
    if (options.checkpoint_path.empty()) return;
    CheckpointState state;
    state.step = s;
    state.wall_s = wall_s;
    state.config_hash = identity.config_hash;
    state.database_id = identity.database_id;
    state.run_id = identity.run_id;
    state.interval_steps = interval_steps;
    if (interval_steps > 0) {
      state.loss_sum = loss_sum.item<double>();
      state.aux_sum = aux_sum.item<double>();
      state.norm_sum = norm_sum.item<double>();
      state.interval_s = seconds_since(interval_start);
    }
    const std::string temporary =
        write_checkpoint_file(options.checkpoint_path, state, *model, optimizer);
    try {
      hooks.commit_checkpoint(
          s, [&] { move_checkpoint_into_place(temporary, options.checkpoint_path); });
    } catch (...) {
      std::error_code ignored;  // the file of a run this worker lost is not left behind
      std::filesystem::remove(temporary, ignored);
      throw;
    }
  };

  TrainResult result;
  if (step == 0) {
    result.last_eval = run_evaluation();
    hooks.on_log(0, result.last_eval, 0.0, 0.0);
  }

  while (step < tc.steps) {
    if (hooks.stop_requested()) {
      checkpoint(step);
      result.step = step;
      return result;
    }
    ++step;
    // A layer may ask for an evaluation (transition tuning: the step before its switch).
    bool layer_eval = false;
    for (const auto& layer : model->ffn_layers())
      layer_eval = layer_eval || layer->wants_eval_at(step);
    const bool log_step = step % tc.log_every == 0 || step == tc.steps || layer_eval;
    if (interval_steps == 0) interval_start = Clock::now();
    for (const auto& layer : model->ffn_layers()) {
      layer->on_step(step);
      layer->record_stats(log_step);
    }
    const double lr = learning_rate(tc, step);
    Batch batch = task ? task->batch(step) : sampler->batch(step);
    train_step.run(batch.inputs.to(device, /*non_blocking=*/true),
                   batch.targets.to(device, /*non_blocking=*/true), lr);
    ++interval_steps;

    if (!log_step) continue;
    // The one host sync of the interval: everything below reads device scalars.
    const double mean_loss = loss_sum.item<double>() / double(interval_steps);
    const double interval_s = seconds_since(interval_start);
    wall_s += interval_s;
    if (!std::isfinite(mean_loss))
      throw TrainingError(fmt::format("train/loss is {} at step {} (lr {:.3g}){}", mean_loss, step,
                                      lr, divergence_cause(model->ffn_layers())));
    Metrics metrics = {
        {"train/loss", mean_loss},
        {"train/lr", lr},
        {"train/grad_norm", norm_sum.item<double>() / double(interval_steps)},
        {"time/step_ms", 1000.0 * interval_s / double(interval_steps)},
        {"time/wall_s", wall_s},
        {"throughput/tokens_per_s", tokens_per_step * double(interval_steps) / interval_s},
    };
    if (train_step.saw_aux_loss)
      metrics.emplace_back("train/aux_loss", aux_sum.item<double>() / double(interval_steps));
    const auto& layers = model->ffn_layers();
    for (size_t i = 0; i < layers.size(); ++i) {
      if (!layers[i]->stat_values().defined()) continue;
      auto values = layers[i]->stat_values().to(torch::kCPU);
      for (size_t k = 0; k < layers[i]->stat_names().size(); ++k)
        metrics.emplace_back(fmt::format("layer{}/{}", i, layers[i]->stat_names()[k]),
                             values[int64_t(k)].item<double>());
    }
    const bool eval_step =
        layer_eval || step == tc.steps || (config.eval.every > 0 && step % config.eval.every == 0);
    if (eval_step) {
      result.last_eval = run_evaluation();
      metrics.insert(metrics.end(), result.last_eval.begin(), result.last_eval.end());
      // A recall-task run records what decoding its trained model costs beside its final
      // accuracy (the token-mixing table's time and cache per token; experiments/decode_cost.h).
      if (config.data.corpus == "synthetic" && step == tc.steps) {
        const DecodeCost decode = measure_decode_cost(*model);
        metrics.emplace_back("decode/ms_per_token", decode.ms_per_token);
        metrics.emplace_back("decode/mixer_ms_per_token", decode.mixer_ms_per_token);
        metrics.emplace_back("decode/cache_entries", decode.cache_entries);
      }
    }
    hooks.on_log(step, metrics, wall_s, passes_at(step));
    if (options.progress) {
      std::string line = fmt::format("step {:>6}/{} loss {:.4f} lr {:.2e} {:.0f} tok/s", step,
                                     tc.steps, mean_loss, lr, metrics[5].second);
      for (const auto& [k, v] : result.last_eval)
        if (eval_step && k == "eval/loss") line += fmt::format(" eval {:.4f}", v);
      options.progress(line);
    }
    // The interval is logged: close it before checkpointing, or the checkpoint would carry its
    // sums into the resumed run's next interval (and skew that interval's logged means).
    loss_sum = zeros();
    aux_sum = zeros();
    norm_sum = zeros();
    interval_steps = 0;
    if (step == tc.steps ||
        (tc.checkpoint_every > 0 && step - last_checkpoint >= tc.checkpoint_every)) {
      checkpoint(step);
      last_checkpoint = step;
    }
    interval_start = Clock::now();
  }
  result.finished = true;
  result.step = step;
  return result;
}

}  // namespace mixlab
