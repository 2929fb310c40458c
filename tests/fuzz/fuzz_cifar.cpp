// libFuzzer target: cudacnn::fuzz::parse_cifar (tests/fuzz/parsers.hpp).
#include "parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    cudacnn::fuzz::parse_cifar(data, size);
    return 0;
}
