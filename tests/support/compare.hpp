// The named error metrics that tests compare with (DESIGN.md, test tiers 3 and 4).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "cudacnn/host_tensor.hpp"

#ifndef CUDACNN_FIXTURES_DIR
#error "tests/CMakeLists.txt defines CUDACNN_FIXTURES_DIR for test programs"
#endif
#include "cudacnn/safetensors.hpp"

namespace cudacnn::test {

// Per-tensor relative error: max |a − b| / max |b| (the infinity norms), so one number says how far a whole
// tensor is from the reference whatever its scale; 0 when both are all zeros. Shapes must match (else inf).
template <class A, class B>
double max_relative_error(const HostTensor<A>& actual, const HostTensor<B>& expected) {
    if (actual.shape() != expected.shape()) return INFINITY;
    double diff = 0.0, scale = 0.0;
    for (int64_t i = 0; i < actual.numel(); ++i) {
        const double a = static_cast<double>(actual[i]), b = static_cast<double>(expected[i]);
        if (std::isnan(a) != std::isnan(b)) return INFINITY;
        diff = std::max(diff, std::fabs(a - b));
        scale = std::max(scale, std::fabs(b));
    }
    return scale == 0.0 ? diff : diff / scale;
}

// The committed PyTorch fixture tests/fixtures/<name>.safetensors (made by tools/make-fixtures.sh).
inline SafetensorsFile load_fixture(const std::string& name) {
    return SafetensorsFile::read(std::string(CUDACNN_FIXTURES_DIR) + "/" + name + ".safetensors");
}

}  // namespace cudacnn::test
