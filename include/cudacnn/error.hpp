// The one exception type of cudacnn and the CHECK family that turns failed conditions and
// CUDA / cuBLAS / cuDNN status codes into it, with file:line, what failed and what to do.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace cudacnn {

// Every error the library reports. The message always starts with "file:line: ".
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws Error("file:line: message"). Out of line so that call sites stay small.
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// Status checks; each throws Error naming the expression, the library's name and text for the code.
// They take plain ints so that this header needs no CUDA header.
void check_cuda_status(int status, const char* expression, const char* file, int line);
void check_cublas_status(int status, const char* expression, const char* file, int line);
void check_cudnn_status(int status, const char* expression, const char* file, int line);

}  // namespace cudacnn

// Fail with an fmt-formatted message: CUDACNN_FAIL("conv2d: groups {} must divide {}", g, c).
#define CUDACNN_FAIL(...) ::cudacnn::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))

// Fail unless cond holds: CUDACNN_CHECK(n > 0, "pool: batch size {} must be positive", n).
#define CUDACNN_CHECK(cond, ...)          \
    do {                                  \
        if (!(cond)) CUDACNN_FAIL(__VA_ARGS__); \
    } while (0)

#define CUDACNN_CUDA_CHECK(expr) \
    ::cudacnn::check_cuda_status(static_cast<int>(expr), #expr, __FILE__, __LINE__)
#define CUDACNN_CUBLAS_CHECK(expr) \
    ::cudacnn::check_cublas_status(static_cast<int>(expr), #expr, __FILE__, __LINE__)
#define CUDACNN_CUDNN_CHECK(expr) \
    ::cudacnn::check_cudnn_status(static_cast<int>(expr), #expr, __FILE__, __LINE__)
