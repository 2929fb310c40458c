// cudacnn-bench: per-layer kernel timings beside cuDNN and the CPU reference, the training step's throughput
// and an epoch estimate; `cudacnn-bench --help` lists the flags. All the work is in the library (src/bench).
#include <iostream>
#include <string>
#include <vector>

#include "cudacnn/bench/bench.hpp"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return cudacnn::bench::bench_main(args, std::cout, std::cerr);
}
