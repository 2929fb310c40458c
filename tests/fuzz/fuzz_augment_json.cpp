// libFuzzer target: cudacnn::fuzz::parse_augment_json (tests/fuzz/parsers.hpp).
#include "parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    cudacnn::fuzz::parse_augment_json(data, size);
    return 0;
}
