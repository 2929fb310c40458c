// The cuDNN conv2d parity tests' cases and float-sum tolerance, shared by the float and the bf16 vendor tests
// (tests/ops/conv2d_cudnn_vendor_parity_test.cpp, conv2d_cudnn_bf16_vendor_parity_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/ops/conv2d.hpp"
#include "support/tolerance.hpp"

namespace cudacnn::test {

// Tolerances, relative to each tensor's max |value| (test::max_relative_error).
//
// With FMA math a float sum of L products: test::float_sum_tolerance with a margin of 4 (random inputs in
// [-1, 1] keep the partial sums within a few times the tensor's max |value|).
constexpr double kCudnnMargin = 4.0;
// cuDNN may choose FFT or Winograd algorithms (deterministic, FMA math). Their transforms add rounding that
// does not grow with L, of the order of a hundred 2^-24 relative to the output range (PyTorch's cuDNN-vs-CPU
// float tests pass at about 1e-5 absolute on outputs of order 1); allow the equivalent of 256 more terms
// (6e-5).
constexpr int64_t kCudnnTransformTerms = 256;
inline double cudnn_fma_tolerance(int64_t terms) {
    return float_sum_tolerance(terms, kCudnnMargin) + float_sum_tolerance(kCudnnTransformTerms, kCudnnMargin);
}

struct CudnnConvCase {
    std::string name;
    Shape x, w;                  // (N, C, H, W), (OC, C / G, KH, KW)
    cpu::Conv2dOptions options;  // written Conv2dOptions{stride, padding, dilation, groups, padding_mode}
    bool bias = true;
};

// CifarCNN's six convolutions (3×3, padding 1, bias) at batch 4, at their real image sizes.
inline std::vector<CudnnConvCase> cudnn_cifar_layers() {
    const cpu::Conv2dOptions pad1{1, 1};
    return {
        {"conv_layer.0: 3→32, 32×32", Shape{4, 3, 32, 32}, Shape{32, 3, 3, 3}, pad1},
        {"conv_layer.3: 32→64, 32×32", Shape{4, 32, 32, 32}, Shape{64, 32, 3, 3}, pad1},
        {"conv_layer.7: 64→128, 16×16", Shape{4, 64, 16, 16}, Shape{128, 64, 3, 3}, pad1},
        {"conv_layer.10: 128→128, 16×16", Shape{4, 128, 16, 16}, Shape{128, 128, 3, 3}, pad1},
        {"conv_layer.15: 128→256, 8×8", Shape{4, 128, 8, 8}, Shape{256, 128, 3, 3}, pad1},
        {"conv_layer.18: 256→256, 8×8", Shape{4, 256, 8, 8}, Shape{256, 256, 3, 3}, pad1},
    };
}

// 7×5 images, 3 channels, batches 1 and 5, strides, dilation, groups, depthwise, 'same' / 'valid', 1×1, bias
// on and off.
inline std::vector<CudnnConvCase> cudnn_odd_cases() {
    using M = cpu::Conv2dPaddingMode;
    return {
        {"7×5, 3→5, 3×3 pad 1, batch 5", Shape{5, 3, 7, 5}, Shape{5, 3, 3, 3}, cpu::Conv2dOptions{1, 1}},
        {"stride 2, 2×3 kernel, pad (1, 2), batch 1, no bias", Shape{1, 3, 7, 5}, Shape{4, 3, 2, 3},
         cpu::Conv2dOptions{2, {1, 2}}, false},
        {"stride (2, 1), 3×3, pad 1, batch 5", Shape{5, 3, 7, 5}, Shape{6, 3, 3, 3},
         cpu::Conv2dOptions{{2, 1}, 1}},
        {"dilation 2, pad 2, stride (1, 2), no bias", Shape{2, 3, 7, 5}, Shape{5, 3, 3, 3},
         cpu::Conv2dOptions{{1, 2}, 2, 2}, false},
        {"'same' with dilation 2 (even total: symmetric)", Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3},
         cpu::Conv2dOptions{1, cpu::Conv2dPadding::same(), 2}},
        {"'valid', 3×3, no bias", Shape{2, 3, 7, 5}, Shape{6, 3, 3, 3},
         cpu::Conv2dOptions{1, cpu::Conv2dPadding::valid()}, false},
        {"groups 3: 6→9, 3×3 pad 1, batch 1", Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3},
         cpu::Conv2dOptions{1, 1, 1, 3}},
        {"depthwise 4→4, 3×3 pad 1, batch 5", Shape{5, 4, 7, 5}, Shape{4, 1, 3, 3},
         cpu::Conv2dOptions{1, 1, 1, 4}},
        {"depthwise ×2: 3→6, stride 2, no bias", Shape{5, 3, 7, 5}, Shape{6, 1, 3, 3},
         cpu::Conv2dOptions{2, 1, 1, 3}, false},
        {"1×1, 3→7, stride 2", Shape{2, 3, 7, 5}, Shape{7, 3, 1, 1}, cpu::Conv2dOptions{2, 0}},
        {"reflect mode without padding (the mode has no effect)", Shape{2, 3, 7, 5}, Shape{4, 3, 3, 2},
         cpu::Conv2dOptions{1, 0, 1, 1, M::reflect}},
    };
}

}  // namespace cudacnn::test
