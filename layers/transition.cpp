#include "layers/transition.h"

namespace mixlab {

TransitionImpl::TransitionImpl(const ModelDims& dims, const TransitionOptions& options)
    : options_(options) {
  mot = register_module("mot", std::make_shared<MotImpl>(dims, options.mot));
}

void TransitionImpl::on_step(int64_t step) {
  mot->on_step(step);
  switched_ = step >= options_.switch_at_step;
}

void TransitionImpl::set_eval_mode(const std::string& mode) {
  eval_mode_ = mode;
  mot->set_eval_mode(mode == "discrete" ? "discrete" : "mixed");
}

torch::Tensor TransitionImpl::forward(const torch::Tensor& x) {
  const bool as_switch = eval_mode_ == "switch" || (eval_mode_ == "mixed" && switched_);
  if (!as_switch) {
    aux_loss_ = torch::Tensor();
    mot->record_stats(recording_stats());
    auto y = mot->forward(x);
    if (recording_stats()) {
      std::vector<torch::Tensor> values;
      for (int64_t i = 0; i < mot->stat_values().numel(); ++i)
        values.push_back(mot->stat_values()[i]);
      set_stats(mot->stat_names(), values);
    }
    return y;
  }
  auto out = token_choice_forward(x, mot->controller, mot->w1, mot->w2, options_.switch_layer,
                                  recording_stats());
  aux_loss_ = out.aux_loss;
  if (recording_stats()) set_stats(out.stat_names, out.stat_values);
  return out.y;
}

FfnBuilder parse_transition(const ConfigReader& cfg, const ModelDims& dims) {
  TransitionOptions o;
  o.mot = read_mot_options(cfg, dims);
  if (!cfg.has("switch_at_step")) cfg.fail("switch_at_step", "required: a positive integer");
  o.switch_at_step = cfg.get_positive_int("switch_at_step", 0);
  o.switch_layer.n_experts = o.mot.n_experts;
  o.switch_layer.expert_size = o.mot.expert_size;
  o.switch_layer.k = 1;
  read_token_choice_keys(cfg, o.switch_layer);
  return [dims, o] { return std::make_shared<TransitionImpl>(dims, o); };
}

}  // namespace mixlab
