// Why CUDA cannot be used, in one line with what to do. No CI machine has an old driver or a hidden GPU, so
// the text is checked with made-up versions; the real query (gpu_status) is covered in tests/train.
#include <catch2/catch.hpp>

#include <string>

#include <cuda_runtime_api.h>

#include "src/device/gpu_status_text.hpp"

using Catch::Matchers::Contains;
using cudacnn::detail::describe_unusable_cuda;

namespace {

bool one_line(const std::string& text) {
    return !text.empty() && text.find('\n') == std::string::npos;
}

}  // namespace

TEST_CASE("an old driver: the CUDA versions of the driver and of the build, and what to install", "[device][errors]") {
    const std::string text = describe_unusable_cuda(cudaErrorInsufficientDriver, 12020, 13000, nullptr);
    CHECK(one_line(text));
    CHECK_THAT(text, Contains("the NVIDIA driver supports CUDA 12.2 but this build needs CUDA 13.0"));
    CHECK_THAT(text, Contains("install a newer driver"));
}

TEST_CASE("no driver at all is told apart from an old one", "[device][errors]") {
    const std::string text = describe_unusable_cuda(cudaErrorInsufficientDriver, 0, 13000, nullptr);
    CHECK(one_line(text));
    CHECK_THAT(text, Contains("no NVIDIA driver is installed"));
}

TEST_CASE("no device: CUDA's own words, and CUDA_VISIBLE_DEVICES when it hides the GPUs", "[device][errors]") {
    const std::string plain = describe_unusable_cuda(cudaErrorNoDevice, 13000, 13000, nullptr);
    CHECK(one_line(plain));
    CHECK_THAT(plain, Contains("no CUDA-capable device is detected (cudaErrorNoDevice)"));
    CHECK_THAT(plain, !Contains("CUDA_VISIBLE_DEVICES"));
    const std::string hidden = describe_unusable_cuda(cudaErrorNoDevice, 13000, 13000, "");
    CHECK(one_line(hidden));
    CHECK_THAT(hidden, Contains("CUDA_VISIBLE_DEVICES is ''"));
}
