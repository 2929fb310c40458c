// cuDNN failures a user can fix (a missing or mismatched part of cuDNN 9) get a hint that says how. cuDNN's
// status texts are host functions, so this runs in the cuda flavour without a GPU (as in CI).
#include <catch2/catch.hpp>

#if CUDACNN_CUDA
#include <string>

#include <cudnn.h>

#include "cudacnn/error.hpp"

using Catch::Matchers::Contains;

namespace {

std::string cudnn_message(cudnnStatus_t status) {
    try {
        cudacnn::check_cudnn_status(status, "cudnnCreate(&handle)", "test.cpp", 1);
    } catch (const cudacnn::Error& e) {
        return e.what();
    }
    FAIL("check_cudnn_status did not throw");
    return {};
}

}  // namespace

TEST_CASE("a cuDNN library that could not be loaded: what to install, and the algorithms that need no cuDNN",
          "[errors][cudnn_text]") {
    for (const cudnnStatus_t status :
         {CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED, CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE}) {
        const std::string message = cudnn_message(status);
        CHECK_THAT(message, Contains("cuDNN call 'cudnnCreate(&handle)' failed"));
        CHECK_THAT(message, Contains("install the whole of cuDNN 9"));
        CHECK_THAT(message, Contains("--conv-algo direct or im2col"));
    }
    CHECK_THAT(cudnn_message(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH), Contains("of different versions"));
    CHECK_THAT(cudnn_message(CUDNN_STATUS_NOT_INITIALIZED), Contains("is there a usable GPU and driver?"));
}
#endif
