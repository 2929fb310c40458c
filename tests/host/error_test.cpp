// Error messages of the CHECK family: file:line first, then what failed, with the values that made it fail.
#include <catch2/catch.hpp>

#include <string>

#include <cuda_runtime_api.h>

#include "cudacnn/error.hpp"
#include "cudacnn/error_text.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// The message of the Error that f throws; fails the test when it throws nothing or something else.
template <class F>
std::string error_message(F&& f) {
    try {
        f();
    } catch (const cudacnn::Error& e) {
        return e.what();
    }
    FAIL("no cudacnn::Error was thrown");
    return {};
}

}  // namespace

TEST_CASE("CUDACNN_CHECK passes silently and fails with file:line and the formatted values", "[error]") {
    CHECK_NOTHROW([] { CUDACNN_CHECK(1 + 1 == 2, "never formatted {}", 0); }());

    int line = 0;
    const std::string message = error_message([&] {
        line = __LINE__ + 1;
        CUDACNN_CHECK(3 < 2, "pool: kernel size {} exceeds input {} ({})", 3, 2, "valid padding");
    });
    CHECK_THAT(message, StartsWith(std::string(__FILE__) + ":" + std::to_string(line) + ": "));
    CHECK_THAT(message, Contains("pool: kernel size 3 exceeds input 2 (valid padding)"));
}

TEST_CASE("CUDACNN_FAIL and throw_error put file:line before the message", "[error]") {
    CHECK(error_message([] { cudacnn::throw_error("some/file.cpp", 42, "it broke"); }) ==
          "some/file.cpp:42: it broke");
    CHECK_THAT(error_message([] { CUDACNN_FAIL("value {:.2f}", 0.125); }), Contains("value 0.12"));
}

TEST_CASE("check_cuda_status ignores success and names the call and the error otherwise", "[error]") {
    CHECK_NOTHROW(cudacnn::check_cuda_status(cudaSuccess, "cudaFree(p)", "f.cpp", 1));

    const std::string message = error_message(
        [] { cudacnn::check_cuda_status(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)", "alloc.cpp", 12); });
    CHECK_THAT(message, StartsWith("alloc.cpp:12: CUDA call 'cudaMalloc(&p, n)' failed: "
                                   "cudaErrorMemoryAllocation (out of memory)"));
    CHECK_THAT(message, Contains("batch size"));  // says what to do

    // The macro stringifies the expression and evaluates it once.
    int calls = 0;
    auto failing_call = [&] {
        ++calls;
        return cudaErrorInvalidValue;
    };
    CHECK_THAT(error_message([&] { CUDACNN_CUDA_CHECK(failing_call()); }),
               Contains("CUDA call 'failing_call()' failed: cudaErrorInvalidValue"));
    CHECK(calls == 1);
}

TEST_CASE("cuBLAS and cuDNN status checks name the library and the code", "[error]") {
    CHECK_NOTHROW(cudacnn::check_cublas_status(0, "cublasSgemm(...)", "f.cpp", 1));
    CHECK_NOTHROW(cudacnn::check_cudnn_status(0, "cudnnConvolutionForward(...)", "f.cpp", 1));

    // 3 is CUBLAS_STATUS_ALLOC_FAILED and 3000 CUDNN_STATUS_NOT_SUPPORTED; literal codes keep the library
    // headers out of this test, because the emu flavour does not have those libraries.
    const std::string cublas =
        error_message([] { cudacnn::check_cublas_status(3, "cublasCreate(&h)", "b.cpp", 7); });
    const std::string cudnn =
        error_message([] { cudacnn::check_cudnn_status(3000, "cudnnCreate(&h)", "d.cpp", 9); });
    CHECK_THAT(cublas, StartsWith("b.cpp:7: cuBLAS call 'cublasCreate(&h)' failed"));
    CHECK_THAT(cudnn, StartsWith("d.cpp:9: cuDNN call 'cudnnCreate(&h)' failed"));
#if CUDACNN_CUDA
    CHECK_THAT(cublas, Contains("CUBLAS_STATUS_ALLOC_FAILED"));
    CHECK_THAT(cudnn, Contains("CUDNN_STATUS_NOT_SUPPORTED"));
#else
    CHECK_THAT(cublas, Contains("status 3") && Contains("not part of the emu flavour"));
    CHECK_THAT(cudnn, Contains("status 3000") && Contains("not part of the emu flavour"));
#endif
}

TEST_CASE("without_location drops only a leading file:line", "[error]") {
    try {
        CUDACNN_FAIL("model {}: bad layer", "x.json");
    } catch (const cudacnn::Error& e) {
        CHECK(cudacnn::without_location(e) == "model x.json: bad layer");
    }
    CHECK(cudacnn::without_location(cudacnn::Error("no location: here")) == "no location: here");
    CHECK(cudacnn::without_location(cudacnn::Error("a/b.cpp:12: the message")) == "the message");
    CHECK(cudacnn::without_location(cudacnn::Error(":12: only digits")) == ":12: only digits");
    CHECK(cudacnn::without_location(cudacnn::Error("plain")) == "plain");
}
