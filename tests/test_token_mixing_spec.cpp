// The bundled sweeps/token_mixing.json: it validates, and it is the token-mixing paper's table 1
// (every mixer row on every task, dense FFN, 2 layers, 2 seeds), so `sweep report --table
// accuracy` of its database has the paper's rows and columns.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "sweeps/spec.h"
#include "sweeps/validate.h"

using namespace mixlab;

TEST_CASE("sweeps/token_mixing.json validates: 9 mixers x 3 tasks x 2 seeds, dense FFN, 2 layers") {
  const SweepSpec spec = load_spec(std::string(MIXLAB_SOURCE_DIR) + "/sweeps/token_mixing.json");
  std::vector<RunConfig> configs;
  REQUIRE_NOTHROW(configs = validate_spec(spec));
  REQUIRE(configs.size() == 54);
  // The paper's rows, by the mixer config each variant trains.
  const std::set<std::string> rows = {
      R"({"type":"attention"})",
      R"({"type":"local_attention","window":8})",
      R"({"type":"diagonal_ssm"})",
      R"({"order":8,"pattern":"kth","type":"recurrence"})",
      R"({"pattern":"dense","type":"recurrence"})",
      R"({"pattern":"pow2","type":"recurrence"})",
      R"({"cache_efficient":true,"pattern":"pow2","type":"recurrence"})",
      R"({"pattern":"square_plus_one","type":"recurrence"})",
      R"({"cache_efficient":true,"pattern":"square_plus_one","type":"recurrence"})",
  };
  std::map<std::pair<std::string, std::string>, std::set<int64_t>> seeds;
  for (size_t i = 0; i < configs.size(); ++i) {
    const Json& json = spec.runs[i].config;
    CAPTURE(spec.runs[i].name);
    CHECK(configs[i].data.corpus == "synthetic");
    CHECK(json["ffn"]["type"] == "dense");
    CHECK(configs[i].model.n_layers == 2);
    const std::string mixer = canonical_dump(json["mixer"]);
    CHECK(rows.count(mixer) == 1);
    seeds[{mixer, configs[i].data.task.task}].insert(configs[i].seed);
  }
  // Every (mixer, task) cell, two seeds each.
  CHECK(seeds.size() == 27);
  for (const auto& [cell, s] : seeds) CHECK(s == std::set<int64_t>{0, 1});
}
