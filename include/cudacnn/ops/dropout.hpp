// Dropout and Dropout2d (PyTorch's nn.Dropout / nn.Dropout2d) with masks drawn from Philox so that GPU
// kernels can draw the identical masks: CPU reference, forward and backward.
#pragma once

#include <cstdint>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu {

// ---- The mask rule (kernels must reproduce it bit for bit) ------------------------------------------------
//
// A mask has one entry per "unit": per element of x for dropout, per (n, c) channel of an (N, C, H, W) x for
// dropout2d. Units are numbered j = 0, 1, … in row-major order (for dropout2d j = n · C + c). Unit j draws
//
//     bits = philox_draw(seed, stream, j / 4).v[j % 4]        (cudacnn/philox.hpp; j / 4 is integer division)
//     u    = uint32_to_unit_float(bits)                       (a float k · 2^-24 in [0, 1))
//
// and is kept (mask 1) when  u >= static_cast<float>(p),  dropped (mask 0) otherwise. Both sides of the
// comparison are exact floats, so a kernel that receives p as float and runs one thread per unit (or one per
// four units, sharing a draw) makes the same decision. Consequences: p = 0 keeps every unit, p = 1 drops
// every unit (u < 1), and P(keep) = 1 − p up to the 2^-24 grid of u.
//
// `seed` is the run's seed; `stream` must differ between every dropout call that should get an independent
// mask (each layer, each training step: e.g. stream = step · layers + layer); the same (seed, stream, shape)
// always gives the same mask. dropout and dropout2d use the same numbering, so give them different streams.
//
// Kept values are scaled by 1 / (1 − p) so that the expected output equals the input. Values are computed in
// double and rounded once; a float kernel agrees to rounding (the masks agree exactly).
// y = x · m with m = 0 or 1 / (1 − p), a product as in PyTorch: a NaN or inf in x gives NaN even where
// dropped.

// nn.Dropout's and nn.Dropout2d's arguments (p, and the module's training flag) plus the mask's randomness.
struct DropoutOptions {
    double p = 0.5;        // probability of zeroing a unit, in [0, 1]; p = 1 zeros everything, as PyTorch
    bool training = true;  // false (eval mode) or p = 0: y = x, the mask is all ones
    uint64_t seed = 0;     // Philox key
    uint64_t stream = 0;   // Philox subsequence: distinct per dropout call (see above)
};

// The mask of dropout on a tensor of shape `shape`: same shape, 1 = kept, 0 = dropped. All ones in eval mode.
HostTensor<uint8_t> dropout_mask(const Shape& shape, const DropoutOptions& options);

// The mask of dropout2d on an (N, C, H, W) tensor: shape (N, C), 1 = channel kept. All ones in eval mode.
HostTensor<uint8_t> dropout2d_mask(const Shape& shape, const DropoutOptions& options);

template <class T>
struct DropoutResult {
    HostTensor<T> y;           // same shape as x
    HostTensor<uint8_t> mask;  // dropout: shape of x; dropout2d: (N, C); for the backward
};

template <class T>
struct DropoutGrads {
    HostTensor<T> dx;  // same shape as dy
};

// y = x · mask / (1 − p) element-wise (y = x in eval mode), any shape with at least one element.
template <class T>
DropoutResult<T> dropout(const HostTensor<T>& x, const DropoutOptions& options = {});

// dx = dy · mask / (1 − p) (dx = dy in eval mode), with the mask that the forward returned (shape of dy; any
// nonzero entry means kept) and the forward's options.
template <class T>
DropoutGrads<T> dropout_backward(const HostTensor<T>& dy, const HostTensor<uint8_t>& mask,
                                 const DropoutOptions& options = {});

// x (N, C, H, W): y[n, c, h, w] = x[n, c, h, w] · mask[n, c] / (1 − p): whole channels are zeroed together
// (nn.Dropout2d; only 4-D input is accepted, PyTorch's 3-D special cases are not supported).
template <class T>
DropoutResult<T> dropout2d(const HostTensor<T>& x, const DropoutOptions& options = {});

// dx[n, c, h, w] = dy[n, c, h, w] · mask[n, c] / (1 − p), with the forward's (N, C) mask and options.
template <class T>
DropoutGrads<T> dropout2d_backward(const HostTensor<T>& dy, const HostTensor<uint8_t>& mask,
                                   const DropoutOptions& options = {});

}  // namespace cudacnn::cpu
