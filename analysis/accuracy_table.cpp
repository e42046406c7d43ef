#include "analysis/accuracy_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace mixlab {

namespace {

// The paper's column order (Copy, Assoc. recall, Multi-hop); other tasks follow as they come.
int task_rank(const std::string& task) {
  if (task == "copy") return 0;
  if (task == "mqar") return 1;
  if (task == "multihop") return 2;
  return 3;
}

std::string string_at(const Json& config, const std::string& path) {
  const Json* v = find_path(config, path);
  return v && v->is_string() ? v->get<std::string>() : "";
}

// Where a variant sits: its config without `data` and `seed` (the row) and its `data` (the
// column), from its first run (a variant's runs differ only in the seed).
struct Placement {
  std::string row_key, column_key, task;
  Json data;
};

Placement place(const SweepData::Variant& v) {
  Placement p;
  Json config =
      v.runs.empty() ? Json::object() : Json::parse(v.runs.front().config_json, nullptr, false);
  if (!config.is_object()) config = Json::object();
  p.task = string_at(config, "data.task");
  p.data = config.contains("data") ? config["data"] : Json::object();
  config.erase("data");
  config.erase("seed");
  p.row_key = canonical_dump(config);
  p.column_key = canonical_dump(p.data);
  return p;
}

// The spec variant a run's variant came from: the longest spec variant name that is the run's
// variant or its start before a grid point (" key=value"); the run's variant if none is.
std::string spec_variant_name(const Json& spec, const std::string& variant) {
  std::string best;
  if (spec.contains("variants") && spec["variants"].is_array())
    for (const auto& v : spec["variants"]) {
      const std::string name = string_at(v, "name");
      if (name.empty() || name.size() <= best.size()) continue;
      if (variant == name || variant.rfind(name + " ", 0) == 0) best = name;
    }
  return best.empty() ? variant : best;
}

// The values of `key` at the last point of every finished run of `variants`.
std::vector<double> finals_of(SweepData& data, const std::vector<const SweepData::Variant*>& vs,
                              const std::string& key) {
  std::vector<double> out;
  for (const auto* v : vs) {
    auto f = data.finals(*v, key);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

std::vector<double> percent(std::vector<double> values) {
  for (double& x : values) x *= 100;
  return values;
}

bool any_number(const std::vector<double>& values) {
  return std::any_of(values.begin(), values.end(), [](double x) { return !std::isnan(x); });
}

// A count that cannot vary between seeds (a cache after a given number of tokens) is shown
// alone; a spread where there is one.
Cell exact_or_stat(const std::vector<double>& values, int decimals) {
  const MeanStd s = mean_std(values);
  if (s.n >= 1 && s.std == 0)
    return Cell::of_value(s.mean, s.mean == std::round(s.mean) ? 0 : decimals);
  return Cell::of_stat(s, decimals);
}

}  // namespace

bool has_accuracy(SweepData& data) {
  for (const auto& v : data.variants())
    for (const auto& run : v.finished)
      if (!data.series(run.run_id, "eval/accuracy").empty()) return true;
  return false;
}

Table accuracy_table(SweepData& data) {
  Table t;
  t.name = "accuracy";
  t.title =
      fmt::format("{}: recall-task accuracy (%) by token mixer, with decode cost", data.sweep());

  struct Column {
    std::string key, task, label;
    Json data;
  };
  struct Row {
    std::string key, label;
    std::map<std::string, const SweepData::Variant*> by_column;
    std::vector<const SweepData::Variant*> variants;
  };
  std::vector<Column> columns;
  std::vector<Row> rows;
  std::vector<std::string> collisions;
  for (const auto& v : data.variants()) {
    const Placement p = place(v);
    auto row =
        std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.key == p.row_key; });
    if (row == rows.end()) {
      rows.push_back({p.row_key, spec_variant_name(data.spec(), v.name), {}, {}});
      row = rows.end() - 1;
    }
    if (std::none_of(columns.begin(), columns.end(),
                     [&](const Column& c) { return c.key == p.column_key; }))
      columns.push_back({p.column_key, p.task, p.task.empty() ? "(no task)" : p.task, p.data});
    if (!row->by_column.emplace(p.column_key, &v).second)
      collisions.push_back(v.name);  // cannot happen for distinct configs; said if it does
    row->variants.push_back(&v);
  }
  std::stable_sort(columns.begin(), columns.end(), [](const Column& a, const Column& b) {
    return task_rank(a.task) < task_rank(b.task);
  });
  // Two data sections of one task are told apart by their keys.
  std::map<std::string, int> per_task;
  for (const auto& c : columns) ++per_task[c.task];
  for (auto& c : columns)
    if (per_task[c.task] > 1) {
      Json keys = c.data;
      keys.erase("corpus");
      keys.erase("task");
      c.label += " " + canonical_dump(keys);
    }

  auto cell_variants = [&](const Row& r, const Column& c) {
    std::vector<const SweepData::Variant*> vs;
    auto it = r.by_column.find(c.key);
    if (it != r.by_column.end()) vs.push_back(it->second);
    return vs;
  };

  // The columns beyond accuracy, only where some run recorded them.
  struct Extra {
    std::string label, key;
    const Column* column;
  };
  std::vector<Extra> extras;
  for (const auto& c : columns) {
    std::vector<const SweepData::Variant*> in_column;
    for (const auto& r : rows)
      for (const auto* v : cell_variants(r, c)) in_column.push_back(v);
    if (c.task == "copy" && any_number(finals_of(data, in_column, "eval/exact_match")))
      extras.push_back({c.label + " exact", "eval/exact_match", &c});
    if (c.task == "multihop") {
      // Chains have 1 to data.hops links (4 unless the config says otherwise).
      int64_t hops = 4;
      const Json* h = find_path(c.data, "hops");
      if (h && h->is_number_integer()) hops = h->get<int64_t>();
      for (int64_t k = 1; k <= hops && k <= 64; ++k) {
        const std::string key = fmt::format("eval/accuracy_hop{}", k);
        if (any_number(finals_of(data, in_column, key)))
          extras.push_back({fmt::format("{} hop {}", c.label, k), key, &c});
      }
    }
  }

  t.columns = {"mixer", "runs"};
  for (const auto& c : columns) t.columns.push_back(c.label);
  for (const auto& e : extras) t.columns.push_back(e.label);
  t.columns.push_back("decode ms/token");
  t.columns.push_back("cache/token");

  std::set<int> seeds_per_cell;
  std::set<int64_t> lengths;
  for (const auto& r : rows) {
    size_t finished = 0, all = 0;
    for (const auto* v : r.variants) {
      finished += v->finished.size();
      all += v->runs.size();
      for (const auto& config : v->configs) {
        const Json* s = find_path(config, "model.seq_len");
        lengths.insert(s && s->is_number_integer() ? s->get<int64_t>() : 64);
      }
    }
    std::vector<Cell> row = {Cell::of_text(r.label),
                             Cell::of_text(fmt::format("{}/{}", finished, all))};
    for (const auto& c : columns) {
      const MeanStd s = mean_std(percent(finals_of(data, cell_variants(r, c), "eval/accuracy")));
      if (s.n > 0) seeds_per_cell.insert(s.n);
      row.push_back(Cell::of_stat(s, 2));
    }
    for (const auto& e : extras)
      row.push_back(
          Cell::of_stat(mean_std(percent(finals_of(data, cell_variants(r, *e.column), e.key))), 2));
    row.push_back(
        Cell::of_stat(mean_std(finals_of(data, r.variants, "decode/mixer_ms_per_token")), 3));
    row.push_back(exact_or_stat(finals_of(data, r.variants, "decode/cache_entries"), 1));
    t.rows.push_back(std::move(row));
  }

  std::string seeds;
  for (int n : seeds_per_cell) seeds += (seeds.empty() ? "" : " or ") + std::to_string(n);
  t.notes.push_back(fmt::format(
      "task columns: eval/accuracy at the last evaluation, in % of the target positions of the "
      "task's evaluation set (argmax = target), mean ± sample std over the finished seeds "
      "({} per cell); - where a mixer has no finished run of the task",
      seeds.empty() ? "none" : seeds));
  if (!extras.empty())
    t.notes.push_back(
        "exact: copy's eval/exact_match, % of examples with every target right; hop h: "
        "multihop's eval/accuracy_hop{h}, % of the queries of chains of h links right");
  std::string at;
  for (int64_t n : lengths) at += (at.empty() ? "" : ", ") + std::to_string(n);
  t.notes.push_back(fmt::format(
      "decode ms/token: wall-clock in the mixers' decode steps (all layers) per token when the "
      "trained model decodes one sequence of model.seq_len = {} tokens token by token "
      "(decode/mixer_ms_per_token, median of 5 decodes; the whole model's decode/ms_per_token is "
      "recorded too); cache/token: entries each layer's mixer cache holds after those tokens "
      "(positions or states per sequence and head, as `sweep bench --what decode` counts them); "
      "both over every finished run of the row",
      at.empty() ? "?" : at));
  t.notes.push_back("runs = finished/all over the row's tasks");
  for (const auto& name : collisions)
    t.notes.push_back(fmt::format("{}: left out, another variant has the same row and task", name));
  return t;
}

}  // namespace mixlab
