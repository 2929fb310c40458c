// The ops cudacnn-bench measures, each at one shape: parsed from --shape ("conv2d:N=128,C=3,H=32,W=32,OC=32,
// K=3,P=1") or collected from a model's layers, and printed back in the same canonical form.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/pool.hpp"

namespace cudacnn::bench {

// One op at one shape. params holds every key of the op (defaults filled in) in the op's order; values are
// whole numbers except a conv2d's padding mode ("mode"), an augment's op ("OP") and a train_step's model
// ("model").
struct OpCase {
    std::string op;
    std::vector<std::pair<std::string, std::string>> params;

    const std::string& text(const std::string& key) const;  // throws Error for a key the op does not have
    int64_t number(const std::string& key) const;
};

// The ops --shape accepts, with their keys (for --help and error messages), one line each.
std::vector<std::string> shape_forms();

// Parses "OP:KEY=VALUE,...". Shorthands K, S, P, D set both KH and KW (SH/SW, PH/PW, DH/DW); a pool's
// stride defaults to its kernel. Throws train::UsageError naming the op, key or value and what is accepted,
// also for a shape the op cannot compute (e.g. a kernel larger than the padded input).
OpCase parse_shape(const std::string& text);

// The canonical parameters: keys at their defaults are left out and pairs with equal halves are written with
// their shorthand, so parse_shape(op + ":" + shape_text(c)) == c.
std::string shape_text(const OpCase& c);

bool operator==(const OpCase& a, const OpCase& b);

// The distinct layer shapes of a model at a batch size, in the order of first use: every conv2d,
// batch_norm2d, relu, max_pool2d, avg_pool2d and linear; then the loss (cross_entropy over the classes)
// and the optimizer (`optimizer`: adam, adamw or sgd over all trainable parameters). Other layers (flatten,
// dropout, add, concat, adaptive pooling) are not benchmarked on their own; the training step covers them.
std::vector<OpCase> cases_from_graph(const graph::Graph& graph, int64_t batch_size, const std::string& optimizer);

// Typed views of a case (its op must match; throws Error otherwise). These validate with the reference's
// rules, so a bad geometry throws Error naming the values.
cpu::Conv2dOptions conv2d_options_of(const OpCase& c);
cpu::Conv2dGeometry conv2d_geometry_of(const OpCase& c);
Shape conv2d_weight_shape_of(const OpCase& c);  // (OC, C / G, KH, KW)
Shape input_shape_of(const OpCase& c);  // (N, C, H, W) of conv2d, batch_norm2d, relu and pools
cpu::MaxPool2dOptions max_pool_options_of(const OpCase& c);
cpu::AvgPool2dOptions avg_pool_options_of(const OpCase& c);

// ---- augment ------------------------------------------------------------------------------------------------
// The augmentation ops an augment case times ("augment:OP=hflip,N=32"), each one op of data::parse_augment_spec
// with torchvision-like arguments (hflip: "hflip:0.5"); "default" is the trainer's transform, RandomCrop(32,
// padding=4) + RandomHorizontalFlip + CIFAR-10's Normalize.
struct AugmentBenchOp {
    const char* name;
    const char* spec;  // the spec text ("default": crop:32:4,hflip, then data::with_normalization)
};
const std::vector<AugmentBenchOp>& augment_bench_ops();  // default first, then the ops in AugmentKind's order
// The spec an augment case runs on its 32×32 RGB images (the OP key; throws Error for an unknown one).
data::AugmentSpec augment_spec_of(const OpCase& c);
// The default run's augment cases: every op of augment_bench_ops at N = 1, 32 and 128 (Kornia's table's sizes).
std::vector<OpCase> augment_cases();

}  // namespace cudacnn::bench
