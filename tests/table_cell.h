// Looking up one cell of a report table by row label and column title, for the table tests.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "analysis/report.h"

namespace mixlab {

// The cell in the row whose first cell reads `row` and the column titled `column`; the test
// fails when either is missing.
inline const Cell& cell(const Table& t, const std::string& row, const std::string& column) {
  size_t c = 0;
  while (c < t.columns.size() && t.columns[c] != column) ++c;
  REQUIRE_MESSAGE(c < t.columns.size(), "no column " << column);
  for (const auto& r : t.rows)
    if (r[0].text == row) return r.at(c);
  FAIL("no row " << row);
  static Cell none;
  return none;
}

}  // namespace mixlab
