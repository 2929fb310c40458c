// Running cudacnn-bench from the tools tests (CUDACNN_BENCH_BINARY) and reading the report it writes with --json.
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cudacnn/bench/record.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

namespace cudacnn::test {

// `cudacnn-bench args`, with stdout and stderr captured in temp's log.txt.
inline Outcome run_bench(const std::string& args, const TempDir& temp) {
    return run_program(CUDACNN_BENCH_BINARY, args, temp.path());
}

inline bench::Report read_report(const std::string& path) {
    std::ifstream file(path);
    return bench::report_from_json(nlohmann::json::parse(file));
}

}  // namespace cudacnn::test
