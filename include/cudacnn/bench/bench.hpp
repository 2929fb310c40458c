// cudacnn-bench as a library function: measures what the options ask for, prints the table as it goes and
// returns every record. tools/cudacnn-bench.cpp only calls bench_main.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cudacnn/bench/options.hpp"
#include "cudacnn/bench/record.hpp"

namespace cudacnn::bench {

// Runs the benchmark, writing the device line, the table and a closing summary to `out`. Throws Error for
// what stops the whole run (a model file that does not load, an unwritable --json path); an implementation
// that is wrong or fails is a record, not an exception.
Report run_bench(const BenchOptions& options, std::ostream& out);

// The whole command (args without argv[0]): 0 when every measured implementation agreed with the reference,
// 1 for an Error or when any was wrong or failed (after writing the files), 2 for a bad command line.
int bench_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace cudacnn::bench
