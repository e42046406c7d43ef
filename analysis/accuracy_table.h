// The token-mixing paper's Table 1 drawn from a sweep of recall-task runs
// (data.corpus "synthetic", experiments/task_data.h): rows the mixers, columns the tasks.
//
// A row is every variant whose config differs only in `data` (a spec's variants are the mixers
// and its grid the tasks' data sections, sweeps/token_mixing.json), labelled by its spec variant
// name; a column is one data section, labelled by its data.task. Cells: the final
// eval/accuracy in %, mean ± sample std over the finished seeds; then copy's exact match,
// multihop's accuracy per hop count, and what decoding the trained model cost (decode/*,
// experiments/decode_cost.h).
#pragma once

#include "analysis/report.h"

namespace mixlab {

// True when a finished run of the sweep recorded eval/accuracy.
bool has_accuracy(SweepData& data);

Table accuracy_table(SweepData& data);

}  // namespace mixlab
