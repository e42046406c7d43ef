#include "analysis/serve_api.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

#include "analysis/plot.h"
#include "analysis/report.h"
#include "analysis/sweep_progress.h"
#include "analysis/table_json.h"

namespace mixlab {

namespace {

// A request the endpoint refuses: answered with `status` and {"error": message}.
struct ApiError {
  int status;
  std::string message;
};

// The endpoint's parameters, checked: only the names it knows, each at most once, none too long.
class Params {
 public:
  Params(const QueryParams& given, std::set<std::string> known) {
    for (const auto& [name, value] : given) {
      if (!known.count(name))
        throw ApiError{400, fmt::format("unknown parameter \"{}\"", short_text(name))};
      if (values_.count(name))
        throw ApiError{400, fmt::format("parameter \"{}\" given twice", name)};
      if (value.size() > kMaxApiParamBytes)
        throw ApiError{400, fmt::format("parameter \"{}\" is {} bytes long (at most {})", name,
                                        value.size(), kMaxApiParamBytes)};
      values_[name] = value;
    }
  }
  std::string required(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end() || it->second.empty())
      throw ApiError{400, fmt::format("parameter \"{}\" is required", name)};
    return it->second;
  }
  std::string optional(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  // A value for an error message: at most 80 bytes, control characters as '?'.
  static std::string short_text(const std::string& s) {
    std::string out = s.substr(0, 80);
    for (char& c : out)
      if (std::iscntrl(static_cast<unsigned char>(c))) c = '?';
    return s.size() > 80 ? out + "..." : out;
  }

 private:
  std::map<std::string, std::string> values_;
};

Json optional_json(const std::optional<double>& v) {
  return v ? Json(*v) : Json(nullptr);
}
Json optional_json(const std::optional<int64_t>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json progress_json(const SweepProgress& p) {
  return {{"name", p.sweep},
          {"run_count", p.runs.size()},
          {"per_status", p.per_status},
          {"done_steps", p.done_steps},
          {"total_steps", p.total_steps},
          {"fraction", p.fraction},
          {"seconds_left", optional_json(p.seconds_left)},
          {"active", p.active()}};
}

Json run_summary_json(const RunRow& r) {
  return {{"run_id", r.run_id},
          {"name", r.name},
          {"variant", r.variant},
          {"seed", r.seed},
          {"status", r.status},
          {"attempt", r.attempt},
          {"last_step", optional_json(r.last_step)},
          {"error", r.error}};
}

std::string require_sweep(Store& store, const Params& params, const std::string& param) {
  const std::string name = params.required(param);
  if (!store.find_sweep(name))
    throw ApiError{404, fmt::format("no sweep \"{}\" in the database", Params::short_text(name))};
  return name;
}

Json sweeps_endpoint(Store& store, const QueryParams& given, double now) {
  Params params(given, {});
  Json out = Json::array();
  for (const auto& sweep : store.sweeps()) {
    Json p = progress_json(sweep_progress(store, sweep.name, now));
    p["created_at"] = sweep.created_at;
    out.push_back(std::move(p));
  }
  return {{"sweeps", std::move(out)}, {"now", now}};
}

Json sweep_endpoint(Store& store, const QueryParams& given, double now) {
  Params params(given, {"name"});
  const std::string name = require_sweep(store, params, "name");
  const SweepProgress progress = sweep_progress(store, name, now);
  Json out = progress_json(progress);
  Json runs = Json::array(), variants = Json::array();
  std::vector<std::string> seen;
  for (const auto& run : progress.runs) {
    runs.push_back(run_summary_json(run));
    if (std::find(seen.begin(), seen.end(), run.variant) != seen.end()) continue;
    const VariantStyle style = variant_style(seen.size());
    variants.push_back({{"name", run.variant}, {"colour", style.colour}, {"dash", style.dash}});
    seen.push_back(run.variant);
  }
  out["runs"] = std::move(runs);
  out["variants"] = std::move(variants);
  out["metric_keys"] = matching_keys(store, name, "*");
  out["table_names"] = table_names();
  return out;
}

Json report_endpoint(Store& store, const QueryParams& given) {
  Params params(given, {"sweep", "table"});
  const std::string sweep = require_sweep(store, params, "sweep");
  const std::string table = params.optional("table", "all");
  const auto& names = table_names();
  if (table != "all" && std::find(names.begin(), names.end(), table) == names.end())
    throw ApiError{400, fmt::format("table \"{}\": must be all or one of the report's tables",
                                    Params::short_text(table))};
  Json tables = Json::array();
  for (const Table& t : build_tables(store, sweep, table)) tables.push_back(table_json(t));
  return {{"sweep", sweep}, {"table", table}, {"tables", std::move(tables)}};
}

Json curves_endpoint(Store& store, const QueryParams& given) {
  Params params(given, {"sweep", "metric", "x"});
  const std::string sweep = require_sweep(store, params, "sweep");
  const std::string metric = params.required("metric");
  const std::string x = params.optional("x", "step");
  if (x != "step" && x != "wall" && x != "tokens")
    throw ApiError{400,
                   fmt::format("x = \"{}\": must be step, wall or tokens", Params::short_text(x))};
  const auto keys = matching_keys(store, sweep, metric);
  if (keys.empty())
    throw ApiError{404, fmt::format("no metric of sweep \"{}\" matches \"{}\"",
                                    Params::short_text(sweep), Params::short_text(metric))};
  Json series = Json::array();
  for (const CurveSeries& s : sweep_curves(store, sweep, keys, x)) {
    Json points = Json::array();
    for (const CurvePoint& p : s.points)
      points.push_back({p.x, p.step, p.n, p.mean, p.std, p.min, p.max});
    const VariantStyle style = variant_style(s.variant_index);
    series.push_back({{"key", s.key},
                      {"variant", s.variant},
                      {"colour", style.colour},
                      {"dash", style.dash},
                      {"seeds", s.seeds},
                      {"points", std::move(points)}});
  }
  return {{"sweep", sweep},
          {"metric", metric},
          {"x", x},
          {"keys", keys},
          {"point_fields", {"x", "step", "n", "mean", "std", "min", "max"}},
          {"series", std::move(series)}};
}

// The sweeps that list the run, with its name and variant in each.
Json sweeps_of_run(Store& store, int64_t run_id) {
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT s.name, sr.variant, sr.name FROM sweep_runs sr JOIN sweeps s USING (sweep_id) "
      "WHERE sr.run_id = ?1 ORDER BY s.sweep_id";
  if (sqlite3_prepare_v2(store.handle(), sql, -1, &stmt, nullptr) != SQLITE_OK)
    throw StoreError(fmt::format("{}: {}", store.path(), sqlite3_errmsg(store.handle())));
  sqlite3_bind_int64(stmt, 1, run_id);
  Json out = Json::array();
  auto text = [&](int col) {
    const unsigned char* t = sqlite3_column_text(stmt, col);
    return std::string(t ? reinterpret_cast<const char*>(t) : "");
  };
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
    out.push_back({{"sweep", text(0)}, {"variant", text(1)}, {"name", text(2)}});
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) throw StoreError(fmt::format("{}: {}", store.path(), sqlite3_errstr(rc)));
  return out;
}

Json run_endpoint(Store& store, const QueryParams& given) {
  Params params(given, {"id"});
  const std::string id_text = params.required("id");
  if (id_text.size() > 18 || !std::all_of(id_text.begin(), id_text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      }))
    throw ApiError{400,
                   fmt::format("id = \"{}\": must be a run number", Params::short_text(id_text))};
  const int64_t id = std::stoll(id_text);
  const auto run = store.run(id);
  if (!run) throw ApiError{404, fmt::format("no run {} in the database", id)};
  Json out = run_summary_json(*run);
  const Json config = Json::parse(run->config_json, nullptr, false);
  out["config"] = config.is_discarded() ? Json(run->config_json) : config;
  out["config_hash"] = run->config_hash;
  out["worker"] = run->worker;
  out["checkpoint_step"] = optional_json(run->checkpoint_step);
  out["params_total"] = optional_json(run->params_total);
  out["params_active"] = optional_json(run->params_active);
  out["flops_per_token"] = optional_json(run->flops_per_token);
  out["passes"] = optional_json(run->passes);
  out["heartbeat"] = optional_json(run->heartbeat);
  out["started_at"] = optional_json(run->started_at);
  out["ended_at"] = optional_json(run->ended_at);
  out["sweeps"] = sweeps_of_run(store, id);
  Json metrics = Json::object();
  for (const auto& key : store.metric_keys(id)) {
    Json steps = Json::array(), values = Json::array(), walls = Json::array();
    for (const MetricPoint& p : store.metric_series(id, key)) {
      steps.push_back(p.step);
      values.push_back(p.value);  // NaN (a NULL value) is written as null
      walls.push_back(p.wall_s);
    }
    metrics[key] = {
        {"step", std::move(steps)}, {"value", std::move(values)}, {"wall_s", std::move(walls)}};
  }
  out["metrics"] = std::move(metrics);
  return out;
}

}  // namespace

ApiResponse answer_api(Store& store, const std::string& path, const QueryParams& params,
                       double now) {
  try {
    if (path == "/api/sweeps") return {200, sweeps_endpoint(store, params, now)};
    if (path == "/api/sweep") return {200, sweep_endpoint(store, params, now)};
    if (path == "/api/report") return {200, report_endpoint(store, params)};
    if (path == "/api/curves") return {200, curves_endpoint(store, params)};
    if (path == "/api/run") return {200, run_endpoint(store, params)};
    return {404, {{"error", fmt::format("no endpoint {}", Params::short_text(path))}}};
  } catch (const ApiError& e) {
    return {e.status, {{"error", e.message}}};
  }
}

}  // namespace mixlab
