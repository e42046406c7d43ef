#include "analysis/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <regex>
#include <set>

#include "analysis/accuracy_table.h"
#include "analysis/export.h"

namespace mixlab {

// ---- cells and rendering --------------------------------------------------------------------

Cell Cell::of_text(std::string text) {
  Cell c;
  c.kind = Kind::text;
  c.text = std::move(text);
  return c;
}

Cell Cell::of_value(double value, int decimals) {
  if (std::isnan(value)) return of_text("-");
  Cell c;
  c.kind = Kind::number;
  c.mean = value;
  c.decimals = decimals;
  return c;
}

Cell Cell::of_stat(const MeanStd& stat, int decimals) {
  if (stat.n == 0 || std::isnan(stat.mean)) return of_text("-");
  Cell c = of_value(stat.mean, decimals);
  // One seed has no spread: show the value alone rather than a misleading "± 0".
  if (stat.n > 1) c.std = stat.std;
  c.n = stat.n;
  return c;
}

Cell Cell::of_bound(Bound bound, double value, int decimals) {
  Cell c = of_value(value, decimals);
  if (c.kind == Kind::number) c.bound = bound;
  return c;
}

const char* Cell::bound_sign() const {
  switch (bound) {
    case Bound::less_than:
      return "<";
    case Bound::more_than:
      return ">";
    case Bound::none:
      break;
  }
  return "";
}

std::optional<TableFormat> parse_table_format(const std::string& name) {
  if (name == "md" || name == "markdown") return TableFormat::markdown;
  if (name == "csv") return TableFormat::csv;
  if (name == "latex" || name == "tex") return TableFormat::latex;
  return std::nullopt;
}

namespace {

std::string fixed(double v, int decimals) {
  return fmt::format("{:.{}f}", v, decimals);
}

// Every digit a double needs to read back exactly.
std::string full_precision(double v) {
  return fmt::format("{:.17g}", v);
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += c;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\\':
        out += "\\textbackslash{}";
        break;
      case '<':  // in text mode, the default font encoding prints these as inverted marks
        out += "\\textless{}";
        break;
      case '>':
        out += "\\textgreater{}";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string render_markdown(const Table& t) {
  std::string out = fmt::format("### {}\n\n|", md_escape(t.title));
  for (const auto& c : t.columns) out += " " + md_escape(c) + " |";
  out += "\n|";
  for (size_t i = 0; i < t.columns.size(); ++i) out += i == 0 ? "---|" : "---:|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& cell : row) out += " " + md_escape(cell_text(cell)) + " |";
    out += "\n";
  }
  if (!t.notes.empty()) out += "\n";
  for (const auto& note : t.notes) out += "- " + note + "\n";
  return out + "\n";
}

std::string render_csv(const Table& t) {
  std::vector<bool> split(t.columns.size(), false);
  for (const auto& row : t.rows)
    for (size_t i = 0; i < row.size() && i < split.size(); ++i)
      split[i] = split[i] || row[i].has_std();
  std::vector<std::string> header;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    header.push_back(csv_field(t.columns[i]));
    if (split[i]) header.push_back(csv_field(t.columns[i] + " std"));
  }
  auto join = [](const std::vector<std::string>& fields) {
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + fields[i];
    return line + "\n";
  };
  std::string out = join(header);
  for (const auto& row : t.rows) {
    std::vector<std::string> fields;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const Cell cell = i < row.size() ? row[i] : Cell::empty();
      // "-" marks a missing number for people; a CSV reader wants an empty field.
      if (cell.kind == Cell::Kind::number)
        fields.push_back(cell.bound_sign() + full_precision(cell.mean));
      else
        fields.push_back(cell.text == "-" ? "" : csv_field(cell.text));
      if (split[i]) fields.push_back(cell.has_std() ? full_precision(cell.std) : "");
    }
    out += join(fields);
  }
  return out;
}

std::string render_latex(const Table& t) {
  std::string spec = "l";
  for (size_t i = 1; i < t.columns.size(); ++i) spec += "r";
  std::string out = "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n";
  out += "\\caption{" + latex_escape(t.title) + "}\n";
  out += "\\label{tab:" + t.name + "}\n\\begin{tabular}{" + spec + "}\n\\toprule\n";
  for (size_t i = 0; i < t.columns.size(); ++i)
    out += (i ? " & " : "") + latex_escape(t.columns[i]);
  out += " \\\\\n\\midrule\n";
  for (const auto& row : t.rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      const Cell& cell = row[i];
      std::string text;
      if (cell.kind == Cell::Kind::text) text = latex_escape(cell.text);
      if (cell.kind == Cell::Kind::number) {
        text = "$";
        if (cell.bound != Cell::Bound::none) text += std::string(cell.bound_sign()) + " ";
        text += fixed(cell.mean, cell.decimals);
        if (cell.has_std()) text += " \\pm " + fixed(cell.std, cell.decimals);
        text += "$";
      }
      out += (i ? " & " : "") + text;
    }
    out += " \\\\\n";
  }
  out += "\\bottomrule\n\\end{tabular}\n";
  // The notes say how the numbers were made and what they leave out: printed under the
  // table, not hidden in comments.
  if (!t.notes.empty()) {
    out += "\\par\\smallskip\n{\\footnotesize\n";
    for (const auto& note : t.notes) out += latex_escape(note) + "\\par\n";
    out += "}\n";
  }
  out += "\\end{table}\n";
  return out + "\n";
}

}  // namespace

std::string cell_text(const Cell& cell) {
  if (cell.kind == Cell::Kind::text) return cell.text;
  if (cell.kind != Cell::Kind::number) return "";
  std::string text;
  if (cell.bound != Cell::Bound::none) text = std::string(cell.bound_sign()) + " ";
  text += fixed(cell.mean, cell.decimals);
  if (cell.has_std()) text += " ± " + fixed(cell.std, cell.decimals);
  return text;
}

std::string render_table(const Table& table, TableFormat format) {
  switch (format) {
    case TableFormat::markdown:
      return render_markdown(table);
    case TableFormat::csv:
      return render_csv(table);
    case TableFormat::latex:
      return render_latex(table);
  }
  return {};
}

// ---- the data behind the tables ---------------------------------------------------------

SweepData::SweepData(Store& store, std::string sweep) : store_(store), sweep_(std::move(sweep)) {
  if (auto row = store_.find_sweep(sweep_)) {
    Json spec = Json::parse(row->spec_json, nullptr, false);
    if (spec.is_object()) spec_ = std::move(spec);
  }
  std::map<std::string, size_t> index;
  for (const RunRow& run : store_.sweep_runs(sweep_)) {
    auto [it, added] = index.emplace(run.variant, variants_.size());
    if (added) {
      variants_.emplace_back();
      variants_.back().name = run.variant;
    }
    Variant& v = variants_[it->second];
    Json config = Json::parse(run.config_json, nullptr, false);
    if (v.runs.empty() && config.is_object()) {
      const Json* type = find_path(config, "ffn.type");
      if (type && type->is_string()) v.ffn_type = type->get<std::string>();
    }
    v.runs.push_back(run);
    if (run.status == "finished") {
      v.finished.push_back(run);
      v.configs.push_back(config.is_discarded() ? Json::object() : config);
    }
  }
}

const SweepData::Variant* SweepData::dense() const {
  for (const auto& v : variants_)
    if (v.ffn_type == "dense") return &v;
  return nullptr;
}

const std::vector<MetricPoint>& SweepData::series(int64_t run_id, const std::string& key) {
  auto k = std::make_pair(run_id, key);
  auto it = cache_.find(k);
  if (it == cache_.end()) it = cache_.emplace(k, store_.metric_series(run_id, key)).first;
  return it->second;
}

std::vector<double> SweepData::finals(const Variant& variant, const std::string& key) {
  std::vector<double> out;
  for (const auto& run : variant.finished) {
    const auto& s = series(run.run_id, key);
    double last = NAN;
    for (auto p = s.rbegin(); p != s.rend(); ++p)
      if (!std::isnan(p->value)) {
        last = p->value;
        break;
      }
    out.push_back(last);
  }
  return out;
}

std::vector<int> SweepData::layers_with(const std::string& stat) {
  const std::regex pattern("layer([0-9]+)/" + stat);
  std::set<int> layers;
  for (const auto& v : variants_)
    for (const auto& run : v.finished) {
      auto it = keys_.find(run.run_id);
      if (it == keys_.end()) it = keys_.emplace(run.run_id, store_.metric_keys(run.run_id)).first;
      for (const auto& key : it->second) {
        std::smatch m;
        if (std::regex_match(key, m, pattern)) layers.insert(std::stoi(m[1]));
      }
    }
  return {layers.begin(), layers.end()};
}

Reach reach_target(const std::vector<MetricPoint>& eval_loss, double target) {
  std::vector<double> steps, losses, walls;
  for (const auto& p : eval_loss) {
    if (std::isnan(p.value)) continue;
    steps.push_back(double(p.step));
    losses.push_back(p.value);
    walls.push_back(p.wall_s);
  }
  Reach r;
  r.step = first_reach_below(steps, losses, target);
  if (r.step) r.wall_s = interpolate(steps, walls, *r.step);
  return r;
}

// ---- the tables ---------------------------------------------------------------------------

namespace {

std::string runs_cell(const SweepData::Variant& v) {
  return fmt::format("{}/{}", v.finished.size(), v.runs.size());
}

// Per finished run: the mean of a metric over all its logged points (NaN if none).
std::vector<double> run_means(SweepData& data, const SweepData::Variant& v,
                              const std::string& key) {
  std::vector<double> out;
  for (const auto& run : v.finished) {
    std::vector<double> values;
    for (const auto& p : data.series(run.run_id, key))
      if (!std::isnan(p.value)) values.push_back(p.value);
    out.push_back(mean_std(values).mean);
  }
  return out;
}

// The first value a variant's runs agree on (parameter counts, FLOPs do not vary by seed).
template <typename Get>
double first_known(const SweepData::Variant& v, Get get) {
  for (const auto& run : v.runs)
    if (auto value = get(run)) return double(*value);
  return NAN;
}

bool any_series(SweepData& data, const SweepData::Variant& v, const std::string& key) {
  for (const auto& run : v.finished)
    if (!data.series(run.run_id, key).empty()) return true;
  return false;
}

const std::string kStatNote = "mean ± sample std over the finished seeds of each variant";

}  // namespace

Table summary_table(SweepData& data) {
  Table t;
  t.name = "summary";
  t.title = fmt::format("{}: final evaluation loss and perplexity", data.sweep());
  bool discrete = false;
  for (const auto& v : data.variants())
    discrete = discrete || any_series(data, v, "eval_discrete/loss");
  t.columns = {"variant", "runs", "eval loss", "eval ppl"};
  if (discrete) t.columns.push_back("eval loss (discrete)");
  t.columns.push_back("train loss");
  for (const auto& v : data.variants()) {
    std::vector<double> losses = data.finals(v, "eval/loss");
    std::vector<double> ppl = data.finals(v, "eval/ppl");
    // Perplexity is exp(loss) per seed where the run did not log it.
    for (size_t i = 0; i < ppl.size(); ++i)
      if (std::isnan(ppl[i])) ppl[i] = std::exp(losses[i]);
    std::vector<Cell> row = {Cell::of_text(v.name), Cell::of_text(runs_cell(v)),
                             Cell::of_stat(mean_std(losses), 4), Cell::of_stat(mean_std(ppl), 3)};
    if (discrete) row.push_back(Cell::of_stat(mean_std(data.finals(v, "eval_discrete/loss")), 4));
    row.push_back(Cell::of_stat(mean_std(data.finals(v, "train/loss")), 4));
    t.rows.push_back(row);
  }
  t.notes.push_back(kStatNote +
                    "; runs = finished/all; loss in nats per token at the last "
                    "evaluation");
  return t;
}

// ---- the post-plateau speed-up ----------------------------------------------------------
//
// Byte-level models (and others) sit on a loss plateau before attention starts to use the
// context; a variant that leaves it sooner gains steps that have nothing to do with how fast
// it learns afterwards. The post-plateau speed-up counts only the steps after both models
// have left it: see plateau_of and the table's notes.

namespace {

struct Plateau {
  double level = NAN;           // P: dense's mean eval loss on its slowest interval
  double from = NAN, to = NAN;  // that interval's steps
  double escape = NAN;          // L0 = P - 0.25 (P - target)
  std::string why_not;          // set where there is no plateau to speak of
};

constexpr double kEscapeFraction = 0.25;

// Dense's mean curve (seeds averaged at the evaluation steps all of them logged); its
// plateau is the evaluation interval with the slowest descent (the largest slope, the
// smallest drop per step) among those that start after warm-up and end in the first half of
// the run; P is the mean of the interval's two end losses.
Plateau plateau_of(SweepData& data, const SweepData::Variant& dense, double target) {
  Plateau p;
  std::map<int64_t, std::vector<double>> at_step;
  size_t seeds = 0;
  for (const auto& run : dense.finished) {
    const auto& s = data.series(run.run_id, "eval/loss");
    if (s.empty()) continue;
    ++seeds;
    for (const auto& point : s)
      if (!std::isnan(point.value)) at_step[point.step].push_back(point.value);
  }
  std::vector<double> steps, losses;
  for (const auto& [step, values] : at_step)
    if (values.size() == seeds) {
      steps.push_back(double(step));
      losses.push_back(mean_std(values).mean);
    }
  if (steps.size() < 2) {
    p.why_not = "dense has fewer than two evaluations";
    return p;
  }
  // Warm-up as the runs had it: ceil(warmup_frac * steps); 0.01 is the run config's default.
  double warmup_frac = 0.01, total = steps.back();
  if (!dense.configs.empty()) {
    const Json* frac = find_path(dense.configs.front(), "train.warmup_frac");
    const Json* n = find_path(dense.configs.front(), "train.steps");
    if (frac && frac->is_number()) warmup_frac = frac->get<double>();
    if (n && n->is_number()) total = n->get<double>();
  }
  const double warmup = std::ceil(warmup_frac * total - 1e-9), half = steps.back() / 2;
  double slowest = -INFINITY;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    if (steps[i] < warmup || steps[i + 1] > half) continue;
    const double slope = (losses[i + 1] - losses[i]) / (steps[i + 1] - steps[i]);
    if (slope > slowest) {
      slowest = slope;
      p.from = steps[i];
      p.to = steps[i + 1];
      p.level = (losses[i] + losses[i + 1]) / 2;
    }
  }
  if (std::isnan(p.level)) {
    p.why_not = fmt::format(
        "dense has no evaluation interval between warm-up (step {:.0f}) and half its run (step "
        "{:.0f})",
        warmup, half);
    return p;
  }
  if (!(p.level > target)) {
    p.why_not = fmt::format("dense's slowest interval ({:.4f}) is not above the target", p.level);
    p.level = NAN;
    return p;
  }
  p.escape = p.level - kEscapeFraction * (p.level - target);
  return p;
}

// Steps and wall-clock a run spends between the escape level and the target.
struct PostPlateau {
  enum class Kind { reached, missed, not_escaped } kind = Kind::not_escaped;
  double steps = NAN, wall_s = NAN;  // for `missed`: up to the last evaluation (a lower bound)
};

PostPlateau post_plateau(const std::vector<MetricPoint>& loss, double escape, double target) {
  PostPlateau out;
  const Reach from = reach_target(loss, escape);
  if (!from.step) return out;
  const Reach to = reach_target(loss, target);
  if (to.step) {
    out.kind = PostPlateau::Kind::reached;
    out.steps = *to.step - *from.step;
    out.wall_s = *to.wall_s - *from.wall_s;
  } else {
    out.kind = PostPlateau::Kind::missed;
    out.steps = double(loss.back().step) - *from.step;
    out.wall_s = loss.back().wall_s - *from.wall_s;
  }
  return out;
}

// The four post-plateau cells of one variant: steps, speed-up, wall, speed-up; bounds where
// some seeds escaped but missed the target, as for the plain speed-up.
std::vector<Cell> post_plateau_cells(SweepData& data, const SweepData::Variant& v,
                                     const Plateau& plateau, double target, double base_steps,
                                     double base_wall, bool& any_bound) {
  if (std::isnan(plateau.escape) || v.finished.empty())
    return std::vector<Cell>(4, Cell::of_text("-"));
  std::vector<double> steps, walls;
  size_t reached = 0, escaped = 0;
  for (const auto& run : v.finished) {
    const auto& loss = data.series(run.run_id, "eval/loss");
    const PostPlateau p = post_plateau(loss, plateau.escape, target);
    if (p.kind == PostPlateau::Kind::not_escaped) continue;
    ++escaped;
    if (p.kind == PostPlateau::Kind::reached) ++reached;
    steps.push_back(p.steps);
    walls.push_back(p.wall_s);
  }
  // A seed still on the plateau has no post-plateau count, not even a bound: say how many left.
  if (escaped < v.finished.size())
    return std::vector<Cell>(
        4, Cell::of_text(escaped == 0 ? "not escaped"
                                      : fmt::format("{}/{} escaped", escaped, v.finished.size())));
  const MeanStd step_stat = mean_std(steps), wall_stat = mean_std(walls);
  if (reached == v.finished.size())
    return {Cell::of_stat(step_stat, 0), Cell::of_value(base_steps / step_stat.mean, 2),
            Cell::of_stat(wall_stat, 1), Cell::of_value(base_wall / wall_stat.mean, 2)};
  any_bound = true;
  return {Cell::of_bound(Cell::Bound::more_than, step_stat.mean, 0),
          Cell::of_bound(Cell::Bound::less_than, base_steps / step_stat.mean, 2),
          Cell::of_bound(Cell::Bound::more_than, wall_stat.mean, 1),
          Cell::of_bound(Cell::Bound::less_than, base_wall / wall_stat.mean, 2)};
}

}  // namespace

Table speedup_table(SweepData& data) {
  Table t;
  t.name = "speedup";
  t.title =
      fmt::format("{}: steps and wall-clock to the dense baseline's final loss", data.sweep());
  t.columns = {"variant",
               "runs",
               "reached",
               "eval loss",
               "step to target",
               "speed-up (steps)",
               "wall s to target",
               "speed-up (wall)",
               "ms/step",
               "step time vs dense",
               "post-plateau steps",
               "speed-up post-plateau (steps)",
               "post-plateau wall s",
               "speed-up post-plateau (wall)"};
  const SweepData::Variant* dense = data.dense();
  if (!dense) {
    t.notes.push_back(
        "no dense baseline in this sweep (no variant has ffn.type \"dense\"): "
        "nothing to compare against");
    return t;
  }
  const MeanStd target = mean_std(data.finals(*dense, "eval/loss"));
  if (target.n == 0) {
    t.notes.push_back(
        fmt::format("the dense baseline \"{}\" has no finished run with an "
                    "eval/loss yet",
                    dense->name));
    return t;
  }
  // Dense needs its whole run to reach its own final loss: its last evaluation's step and
  // training wall-clock are the baseline the speed-ups divide.
  std::vector<double> dense_steps, dense_walls;
  for (const auto& run : dense->finished) {
    const auto& s = data.series(run.run_id, "eval/loss");
    if (s.empty()) continue;
    dense_steps.push_back(double(s.back().step));
    dense_walls.push_back(s.back().wall_s);
  }
  const double base_steps = mean_std(dense_steps).mean;
  const double base_wall = mean_std(dense_walls).mean;
  const double base_ms = mean_std(run_means(data, *dense, "time/step_ms")).mean;
  // Dense's post-plateau baseline: from its own escape to the end of its run, per seed.
  const Plateau plateau = plateau_of(data, *dense, target.mean);
  std::vector<double> dense_post_steps, dense_post_walls;
  if (!std::isnan(plateau.escape))
    for (const auto& run : dense->finished) {
      const auto& s = data.series(run.run_id, "eval/loss");
      const Reach from = reach_target(s, plateau.escape);
      if (s.empty() || !from.step) continue;  // a seed ending above L0 has no post-plateau part
      dense_post_steps.push_back(double(s.back().step) - *from.step);
      dense_post_walls.push_back(s.back().wall_s - *from.wall_s);
    }
  const double base_post_steps = mean_std(dense_post_steps).mean;
  const double base_post_wall = mean_std(dense_post_walls).mean;

  bool any_bound = false;
  for (const auto& v : data.variants()) {
    // steps, walls: the seeds that reached the target. floor_*: every seed, a seed that never
    // reached it counted at its last evaluation (it would have needed more): their mean is a
    // lower bound on the variant's mean, and the speed-up it gives an upper bound.
    std::vector<double> steps, walls, floor_steps, floor_walls;
    bool bounded = true;  // false when a seed that missed has no evaluation to bound it
    for (const auto& run : v.finished) {
      const auto& loss = data.series(run.run_id, "eval/loss");
      Reach r = reach_target(loss, target.mean);
      if (r.step) {
        steps.push_back(*r.step);
        walls.push_back(*r.wall_s);
        floor_steps.push_back(*r.step);
        floor_walls.push_back(*r.wall_s);
      } else if (!loss.empty()) {
        floor_steps.push_back(double(loss.back().step));
        floor_walls.push_back(loss.back().wall_s);
      } else {
        bounded = false;
      }
    }
    const size_t finished = v.finished.size(), reached = steps.size();
    std::vector<Cell> to_target;  // step, speed-up (steps), wall, speed-up (wall)
    if (finished == 0) {
      to_target.assign(4, Cell::of_text("-"));
    } else if (reached == finished) {
      const MeanStd step_stat = mean_std(steps), wall_stat = mean_std(walls);
      to_target = {Cell::of_stat(step_stat, 0), Cell::of_value(base_steps / step_stat.mean, 2),
                   Cell::of_stat(wall_stat, 1), Cell::of_value(base_wall / wall_stat.mean, 2)};
    } else if (bounded) {
      any_bound = true;
      const double step_floor = mean_std(floor_steps).mean, wall_floor = mean_std(floor_walls).mean;
      to_target = {Cell::of_bound(Cell::Bound::more_than, step_floor, 0),
                   Cell::of_bound(Cell::Bound::less_than, base_steps / step_floor, 2),
                   Cell::of_bound(Cell::Bound::more_than, wall_floor, 1),
                   Cell::of_bound(Cell::Bound::less_than, base_wall / wall_floor, 2)};
    } else {
      to_target.assign(4, Cell::of_text(reached == 0 ? "not reached" : "-"));
    }
    const MeanStd ms = mean_std(run_means(data, v, "time/step_ms"));
    t.rows.push_back({Cell::of_text(v.name), Cell::of_text(runs_cell(v)),
                      Cell::of_text(fmt::format("{}/{}", reached, finished)),
                      Cell::of_stat(mean_std(data.finals(v, "eval/loss")), 4), to_target[0],
                      to_target[1], to_target[2], to_target[3], Cell::of_stat(ms, 1),
                      Cell::of_value(ms.mean / base_ms, 2)});
    for (Cell& c : post_plateau_cells(data, v, plateau, target.mean, base_post_steps,
                                      base_post_wall, any_bound))
      t.rows.back().push_back(c);
    if (finished > 0 && reached == 0)
      t.notes.push_back(fmt::format("{}: no finished seed reached the target", v.name));
    else if (reached < finished)
      t.notes.push_back(fmt::format("{}: {} of {} finished seeds never reached the target", v.name,
                                    finished - reached, finished));
  }
  if (any_bound)
    t.notes.push_back(
        "where not every finished seed reached the target (reached < finished), a seed that did "
        "not counts at its last evaluation, the fewest steps and least wall-clock it could have "
        "needed: step and wall-clock to target are then lower bounds (>), the speed-ups upper "
        "bounds (<), never a plain mean of the lucky seeds");
  t.notes.insert(t.notes.begin(),
                 fmt::format("target = final eval loss of the dense baseline \"{}\" = {:.4f} "
                             "(mean of {} seeds); a run reaches it where its eval/loss curve, "
                             "linear between evaluations, first comes down to it; wall-clock is "
                             "training time (time/wall_s) interpolated on the same segment",
                             dense->name, target.mean, target.n));
  t.notes.insert(t.notes.begin() + 1,
                 fmt::format("speed-up = dense's whole run ({:.0f} steps, {:.1f} s: the step and "
                             "wall-clock of its last evaluation) / the variant's mean step or "
                             "wall-clock to the target; ms/step is the mean of time/step_ms over "
                             "the logged steps; step time vs dense = ms/step / dense's; reached = "
                             "finished seeds that reached the target / finished seeds",
                             base_steps, base_wall));
  if (std::isnan(plateau.escape))
    t.notes.push_back("post-plateau speed-up: - (" + plateau.why_not + ")");
  else
    t.notes.push_back(fmt::format(
        "post-plateau: the plateau level P = {:.4f} is dense's mean eval loss (seeds averaged) "
        "on its slowest-descent evaluation interval (steps {:.0f}-{:.0f}) among those after "
        "warm-up and within the first half of its run; the escape level L0 = P - 0.25 (P - "
        "target) = {:.4f}; a run's post-plateau steps (wall-clock) = its step (wall-clock) at "
        "the target - at L0, both found as for the target; dense's = its last evaluation - its "
        "step at L0 ({:.0f} steps, {:.1f} s, mean over {} seeds); post-plateau speed-up = "
        "dense's / the variant's mean, so a variant that only leaves the plateau sooner gets "
        "1; not escaped: no seed reached L0; k/n escaped: only k of the n finished seeds did",
        plateau.level, plateau.from, plateau.to, plateau.escape, base_post_steps, base_post_wall,
        dense_post_steps.size()));
  t.notes.push_back(kStatNote);
  return t;
}

Table temperature_table(SweepData& data) {
  Table t;
  t.name = "temperature";
  t.title =
      fmt::format("{}: per-layer controller entropy and log temperature at the end", data.sweep());
  std::set<int> layer_set;
  for (int i : data.layers_with("entropy")) layer_set.insert(i);
  for (int i : data.layers_with("temperature")) layer_set.insert(i);
  t.columns = {"variant", "runs", "eval loss"};
  for (int i : layer_set) {
    t.columns.push_back(fmt::format("L{} entropy", i));
    t.columns.push_back(fmt::format("L{} log T", i));
  }
  if (layer_set.empty()) {
    t.notes.push_back("no layer{i}/entropy or layer{i}/temperature metric in this sweep");
    return t;
  }
  for (const auto& v : data.variants()) {
    std::vector<Cell> row = {Cell::of_text(v.name), Cell::of_text(runs_cell(v)),
                             Cell::of_stat(mean_std(data.finals(v, "eval/loss")), 4)};
    for (int i : layer_set) {
      row.push_back(Cell::of_stat(mean_std(data.finals(v, fmt::format("layer{}/entropy", i))), 3));
      std::vector<double> log_t = data.finals(v, fmt::format("layer{}/temperature", i));
      for (double& x : log_t) x = std::log(x);  // NaN and non-positive stay not-a-number
      row.push_back(Cell::of_stat(mean_std(log_t), 3));
    }
    t.rows.push_back(row);
  }
  t.notes.push_back(
      "entropy: the last layer{i}/entropy, normalised to [0, 1]; log T: the "
      "natural log of the last layer{i}/temperature; - where a layer has none "
      "(dense)");
  t.notes.push_back(kStatNote);
  return t;
}

Table costs_table(SweepData& data) {
  Table t;
  t.name = "costs";
  t.title = fmt::format("{}: parameters, compute and time", data.sweep());
  t.columns = {"variant",        "runs",   "params total", "params active", "FLOPs/token",
               "FLOPs vs dense", "passes", "ms/step",      "wall s"};
  const SweepData::Variant* dense = data.dense();
  const double dense_flops =
      dense ? first_known(*dense, [](const RunRow& r) { return r.flops_per_token; }) : NAN;
  for (const auto& v : data.variants()) {
    const double flops = first_known(v, [](const RunRow& r) { return r.flops_per_token; });
    // Passes depend on how far a run got: the mean over the finished seeds, like every
    // statistic, not whichever run comes first.
    std::vector<double> passes;
    for (const auto& run : v.finished) passes.push_back(run.passes ? *run.passes : NAN);
    t.rows.push_back(
        {Cell::of_text(v.name), Cell::of_text(runs_cell(v)),
         Cell::of_value(first_known(v, [](const RunRow& r) { return r.params_total; }), 0),
         Cell::of_value(first_known(v, [](const RunRow& r) { return r.params_active; }), 0),
         Cell::of_value(flops, 0), Cell::of_value(flops / dense_flops, 3),
         Cell::of_stat(mean_std(passes), 3),
         Cell::of_stat(mean_std(run_means(data, v, "time/step_ms")), 1),
         Cell::of_stat(mean_std(data.finals(v, "time/wall_s")), 1)});
  }
  t.notes.push_back(
      "params active: parameters one token's forward pass touches; FLOPs/token: "
      "training (forward + backward) FLOPs per token; passes: tokens seen / "
      "training split");
  t.notes.push_back("wall s: training wall-clock (time/wall_s, evaluation excluded) at the end; " +
                    kStatNote);
  if (!dense) t.notes.push_back("no dense baseline (ffn.type \"dense\"): no FLOPs ratio");
  return t;
}

Table transition_table(SweepData& data) {
  Table t;
  t.name = "transition";
  t.title = fmt::format("{}: transition tuning, loss before and after switching MoT to Switch",
                        data.sweep());
  t.columns = {"variant",
               "runs",
               "switch at step",
               "eval loss before",
               "switch-eval loss before",
               "eval loss after",
               "final eval loss",
               "final switch-eval loss"};
  for (const auto& v : data.variants()) {
    const bool has_switch_eval = any_series(data, v, "eval_switch/loss");
    if (v.ffn_type != "transition" && !has_switch_eval) continue;
    std::vector<double> switch_at, before, switch_before, after;
    for (size_t r = 0; r < v.finished.size(); ++r) {
      const Json* at = find_path(v.configs[r], "ffn.switch_at_step");
      double s = at && at->is_number() ? at->get<double>() : NAN;
      switch_at.push_back(s);
      const auto& loss = data.series(v.finished[r].run_id, "eval/loss");
      const auto& sw = data.series(v.finished[r].run_id, "eval_switch/loss");
      // switch_at_step is the first step trained as Switch, and an evaluation at step k follows
      // step k's update: before is the last evaluation at a step < switch_at_step (the MoT
      // weights; the transition layer asks for one at switch_at_step - 1), after the first one
      // at or past it.
      double b = NAN, a = NAN, sb = NAN;
      int64_t before_step = -1;
      for (const auto& p : loss) {
        if (std::isnan(s)) break;
        if (double(p.step) < s) {
          b = p.value;
          before_step = p.step;
        } else if (std::isnan(a)) {
          a = p.value;
        }
      }
      for (const auto& p : sw)
        if (p.step == before_step) sb = p.value;
      before.push_back(b);
      after.push_back(a);
      switch_before.push_back(sb);
    }
    t.rows.push_back({Cell::of_text(v.name), Cell::of_text(runs_cell(v)),
                      Cell::of_stat(mean_std(switch_at), 0), Cell::of_stat(mean_std(before), 4),
                      Cell::of_stat(mean_std(switch_before), 4), Cell::of_stat(mean_std(after), 4),
                      Cell::of_stat(mean_std(data.finals(v, "eval/loss")), 4),
                      Cell::of_stat(mean_std(data.finals(v, "eval_switch/loss")), 4)});
  }
  if (t.rows.empty()) {
    t.notes.push_back(
        "no transition runs in this sweep (no ffn.type \"transition\" and no "
        "eval_switch/loss metric)");
    return t;
  }
  t.notes.push_back(
      "switch at step: ffn.switch_at_step (the first step trained as Switch); before: the last "
      "evaluation before it (eval/loss, and eval_switch/loss: the same model evaluated as "
      "Switch); after: the first evaluation past it; - where a run has no such "
      "metric");
  t.notes.push_back(kStatNote);
  return t;
}

Table grid_table(SweepData& data) {
  Table t;
  t.name = "grid";
  const Json* grid = data.spec().contains("grid") ? &data.spec()["grid"] : nullptr;
  if (grid == nullptr || !grid->is_object() || grid->size() != 2) {
    t.title = fmt::format("{}: final evaluation loss over the grid", data.sweep());
    t.columns = {"grid"};
    t.notes.push_back(fmt::format("the spec's grid has {} keys; this table needs two",
                                  grid && grid->is_object() ? grid->size() : 0));
    return t;
  }
  const std::string row_key = grid->begin().key(), column_key = std::next(grid->begin()).key();
  const Json &row_values = grid->begin().value(), &column_values = std::next(grid->begin()).value();
  auto short_name = [](const std::string& key) { return key.substr(key.rfind('.') + 1); };
  t.title = fmt::format("{}: final evaluation loss by {} (rows) and {} (columns)", data.sweep(),
                        row_key, column_key);
  // Where each variant sits: (layer type, row value, column value) from its own config.
  std::map<std::tuple<std::string, std::string, std::string>, const SweepData::Variant*> cells;
  std::vector<std::string> types;
  std::vector<const SweepData::Variant*> outside;
  for (const auto& v : data.variants()) {
    const Json* r = v.configs.empty() ? nullptr : find_path(v.configs.front(), row_key);
    const Json* c = v.configs.empty() ? nullptr : find_path(v.configs.front(), column_key);
    if (r == nullptr || c == nullptr) {
      outside.push_back(&v);
      continue;
    }
    cells[{v.ffn_type, r->dump(), c->dump()}] = &v;
    if (std::find(types.begin(), types.end(), v.ffn_type) == types.end())
      types.push_back(v.ffn_type);
  }
  t.columns = {"type", short_name(row_key) + " \\ " + short_name(column_key)};
  for (const auto& c : column_values) t.columns.push_back(c.dump());
  for (const auto& type : types)
    for (const auto& r : row_values) {
      std::vector<Cell> row = {Cell::of_text(type), Cell::of_text(r.dump())};
      for (const auto& c : column_values) {
        auto it = cells.find({type, r.dump(), c.dump()});
        row.push_back(it == cells.end()
                          ? Cell::of_text("-")
                          : Cell::of_stat(mean_std(data.finals(*it->second, "eval/loss")), 4));
      }
      t.rows.push_back(row);
    }
  for (const auto* v : outside) {
    const MeanStd loss = mean_std(data.finals(*v, "eval/loss"));
    t.notes.push_back(fmt::format("{} (outside the grid): eval loss {} ({} finished)", v->name,
                                  cell_text(Cell::of_stat(loss, 4)), loss.n));
  }
  t.notes.push_back("cells: final eval loss (nats per token), " + kStatNote +
                    "; - where no variant or no finished run has that cell");
  return t;
}

const std::vector<std::string>& table_names() {
  static const std::vector<std::string> names = {"summary", "accuracy",   "speedup", "temperature",
                                                 "costs",   "transition", "grid"};
  return names;
}

std::vector<Table> build_tables(Store& store, const std::string& sweep, const std::string& name) {
  if (name != "all" &&
      std::find(table_names().begin(), table_names().end(), name) == table_names().end())
    throw ConfigError("--table", name,
                      "unknown table; one of all, summary, accuracy, speedup, temperature, "
                      "costs, transition, grid");
  SweepData data(store, sweep);
  std::vector<Table> out;
  auto want = [&](const char* n) { return name == "all" || name == n; };
  if (want("summary")) out.push_back(summary_table(data));
  if (want("accuracy")) {
    // Only recall-task runs record accuracy: asked for by name on a sweep without it, the table
    // would be all dashes, so that is bad input (exit 2); "all" leaves it out.
    if (has_accuracy(data))
      out.push_back(accuracy_table(data));
    else if (name != "all")
      throw ConfigError("--table", name,
                        fmt::format("sweep \"{}\" has no eval/accuracy metric (only recall-task "
                                    "runs, data.corpus \"synthetic\", record it)",
                                    sweep));
  }
  if (want("speedup")) out.push_back(speedup_table(data));
  if (want("temperature")) {
    Table t = temperature_table(data);
    if (name != "all" || !t.rows.empty()) out.push_back(std::move(t));
  }
  if (want("costs")) out.push_back(costs_table(data));
  if (want("transition")) {
    Table t = transition_table(data);
    if (name != "all" || !t.rows.empty()) out.push_back(std::move(t));
  }
  if (want("grid")) {
    Table t = grid_table(data);
    if (name != "all" || !t.rows.empty()) out.push_back(std::move(t));
  }
  return out;
}

}  // namespace mixlab
