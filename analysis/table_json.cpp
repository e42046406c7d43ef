#include "analysis/table_json.h"

#include <algorithm>

namespace mixlab {

namespace {

Json cell_json(const Cell& cell) {
  switch (cell.kind) {
    case Cell::Kind::empty:
      return {{"kind", "empty"}};
    case Cell::Kind::text:
      return {{"kind", "text"}, {"text", cell.text}};
    case Cell::Kind::number:
      break;
  }
  const std::string bound = cell.bound_sign();
  return {{"kind", "number"},
          {"mean", cell.mean},
          {"std", cell.has_std() ? Json(cell.std) : Json(nullptr)},
          {"n", cell.n},
          {"decimals", cell.decimals},
          {"bound", bound.empty() ? Json(nullptr) : Json(bound)},
          {"text", cell_text(cell)}};
}

}  // namespace

Json table_json(const Table& table) {
  Json rows = Json::array();
  for (const auto& row : table.rows) {
    Json cells = Json::array();
    // A short row is padded, as the renderers pad it, so every row has every column.
    for (size_t i = 0; i < std::max(row.size(), table.columns.size()); ++i)
      cells.push_back(cell_json(i < row.size() ? row[i] : Cell::empty()));
    rows.push_back(std::move(cells));
  }
  return {{"name", table.name},
          {"title", table.title},
          {"columns", table.columns},
          {"notes", table.notes},
          {"rows", std::move(rows)}};
}

}  // namespace mixlab
