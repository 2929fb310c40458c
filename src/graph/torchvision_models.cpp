// torchvision 0.14's VGG and ResNet classifiers (torchvision/models/vgg.py, resnet.py) as model specs: the
// same layers in the same order with the same state_dict names, input (3, 224, 224), 1000 classes, so that
// torchvision's weights (e.g. the ImageNet ones, converted to safetensors) load by name.
#include "torchvision_models.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "layer_builders.hpp"

namespace cudacnn::graph::torchvision {

namespace {

using namespace detail;

constexpr int64_t kImageNetClasses = 1000;
const Shape kImageNetInput{3, 224, 224};

// ---- VGG --------------------------------------------------------------------------------------------------

constexpr int kMaxPool = 0;  // "M" in torchvision's cfgs: MaxPool2d(kernel_size=2, stride=2)
// clang-format off
const std::vector<int> kVgg16Config = {64, 64, kMaxPool, 128, 128, kMaxPool, 256, 256, 256, kMaxPool,
                                       512, 512, 512, kMaxPool, 512, 512, 512, kMaxPool};  // torchvision's "D"
// clang-format on

// VGG: features (3×3 convolutions with padding 1, optionally batch norm, ReLU; 2×2 max pools), avgpool
// AdaptiveAvgPool2d((7, 7)), torch.flatten (our "flatten", which has no module in torchvision), and
// classifier (Linear, ReLU, Dropout(0.5) twice, then the last Linear).
ModelSpec vgg(const std::string& name, const std::vector<int>& config, bool batch_norm) {
    ModelSpec spec{name, kImageNetInput, kImageNetClasses, {}};
    Sequential features(spec.layers, "features");
    int64_t channels = 3;
    for (int width : config) {
        if (width == kMaxPool) {
            features << max_pool2d(2, 2);
            continue;
        }
        features << conv2d(channels, width, 3, 1);
        if (batch_norm) features << batch_norm2d(width);
        features << of_kind(LayerKind::relu);
        channels = width;
    }
    spec.layers.push_back(named(adaptive_avg_pool2d(7, 7), "avgpool"));    // (512, 7, 7)
    spec.layers.push_back(named(of_kind(LayerKind::flatten), "flatten"));  // (25088)
    Sequential classifier(spec.layers, "classifier");
    classifier << linear(512 * 7 * 7, 4096) << of_kind(LayerKind::relu) << dropout(LayerKind::dropout, 0.5)
               << linear(4096, 4096) << of_kind(LayerKind::relu) << dropout(LayerKind::dropout, 0.5)
               << linear(4096, kImageNetClasses);
    return spec;
}

// ---- ResNet -----------------------------------------------------------------------------------------------
//
// torchvision's blocks own one nn.ReLU module that forward() applies two or three times, and add the identity
// with `out += identity`, which is no module. A graph layer runs once and names one output, so each use of
// the ReLU and the addition get names of their own inside the block: "<block>.relu1", "<block>.relu2",
// ("<block>.relu3"), "<block>.add". They have no state, so the state_dict names are torchvision's all the
// same. A block's layers are listed in torchvision's registration order (downsample after the last batch
// norm), which is what orders its state_dict.

struct Block {
    std::string name;  // "layer2.0"
    int64_t in_channels;
    int64_t planes;
    int64_t stride;
};

LayerSpec conv3x3(int64_t in_channels, int64_t out_channels, int64_t stride) {
    return conv2d(in_channels, out_channels, 3, /*padding=*/1, stride, /*bias=*/false);
}

LayerSpec conv1x1(int64_t in_channels, int64_t out_channels, int64_t stride) {
    return conv2d(in_channels, out_channels, 1, /*padding=*/0, stride, /*bias=*/false);
}

// Appends the downsample branch when the block changes the shape (torchvision's _make_layer) and returns the
// name of what the residual addition reads as the identity.
std::string identity(ModelSpec& spec, const Block& block, const std::string& block_input,
                     int64_t out_channels) {
    if (block.stride == 1 && block.in_channels == out_channels) return block_input;
    const std::string prefix = block.name + ".downsample";
    spec.layers.push_back(
        named(conv1x1(block.in_channels, out_channels, block.stride), prefix + ".0", {block_input}));
    spec.layers.push_back(named(batch_norm2d(out_channels), prefix + ".1"));
    return prefix + ".1";
}

void add_and_relu(ModelSpec& spec, const Block& block, const std::string& residual,
                  const std::string& identity, const std::string& relu_name) {
    spec.layers.push_back(named(of_kind(LayerKind::add), block.name + ".add", {residual, identity}));
    spec.layers.push_back(named(of_kind(LayerKind::relu), block.name + "." + relu_name));
}

// BasicBlock (expansion 1): conv3x3 (stride) bn relu, conv3x3 bn, + identity, relu.
int64_t basic_block(ModelSpec& spec, const Block& block, const std::string& input) {
    const std::string& p = block.name;
    spec.layers.push_back(
        named(conv3x3(block.in_channels, block.planes, block.stride), p + ".conv1", {input}));
    spec.layers.push_back(named(batch_norm2d(block.planes), p + ".bn1"));
    spec.layers.push_back(named(of_kind(LayerKind::relu), p + ".relu1"));
    spec.layers.push_back(named(conv3x3(block.planes, block.planes, 1), p + ".conv2"));
    spec.layers.push_back(named(batch_norm2d(block.planes), p + ".bn2"));
    add_and_relu(spec, block, p + ".bn2", identity(spec, block, input, block.planes), "relu2");
    return block.planes;
}

// Bottleneck (expansion 4, torchvision's "v1.5": the stride sits on the 3×3 convolution): conv1x1 bn relu,
// conv3x3 (stride) bn relu, conv1x1 (4 × planes) bn, + identity, relu.
int64_t bottleneck(ModelSpec& spec, const Block& block, const std::string& input) {
    const std::string& p = block.name;
    const int64_t out_channels = 4 * block.planes;
    spec.layers.push_back(named(conv1x1(block.in_channels, block.planes, 1), p + ".conv1", {input}));
    spec.layers.push_back(named(batch_norm2d(block.planes), p + ".bn1"));
    spec.layers.push_back(named(of_kind(LayerKind::relu), p + ".relu1"));
    spec.layers.push_back(named(conv3x3(block.planes, block.planes, block.stride), p + ".conv2"));
    spec.layers.push_back(named(batch_norm2d(block.planes), p + ".bn2"));
    spec.layers.push_back(named(of_kind(LayerKind::relu), p + ".relu2"));
    spec.layers.push_back(named(conv1x1(block.planes, out_channels, 1), p + ".conv3"));
    spec.layers.push_back(named(batch_norm2d(out_channels), p + ".bn3"));
    add_and_relu(spec, block, p + ".bn3", identity(spec, block, input, out_channels), "relu3");
    return out_channels;
}

using BlockBuilder = int64_t (*)(ModelSpec&, const Block&, const std::string&);  // returns its out channels

// ResNet: conv1 (7×7, stride 2) bn1 relu maxpool (3, 2, 1), layer1..layer4 (the first block of layer2..4 has
// stride 2), avgpool AdaptiveAvgPool2d((1, 1)), flatten, fc.
ModelSpec resnet(const std::string& name, BlockBuilder block, const std::vector<int>& layers) {
    ModelSpec spec{name, kImageNetInput, kImageNetClasses, {}};
    spec.layers.push_back(named(conv2d(3, 64, 7, /*padding=*/3, /*stride=*/2, /*bias=*/false), "conv1"));
    spec.layers.push_back(named(batch_norm2d(64), "bn1"));
    spec.layers.push_back(named(of_kind(LayerKind::relu), "relu"));
    spec.layers.push_back(named(max_pool2d(3, 2, 1), "maxpool"));
    int64_t channels = 64;
    for (size_t stage = 0; stage < layers.size(); ++stage) {
        const int64_t planes = int64_t{64} << stage;
        for (int b = 0; b < layers[stage]; ++b) {
            const Block spec_block{fmt::format("layer{}.{}", stage + 1, b), channels, planes,
                                   stage > 0 && b == 0 ? 2 : 1};
            const std::string input = spec.layers.back().name;  // a copy: the block appends to spec.layers
            channels = block(spec, spec_block, input);
        }
    }
    spec.layers.push_back(named(adaptive_avg_pool2d(1, 1), "avgpool"));  // (C, 1, 1)
    spec.layers.push_back(named(of_kind(LayerKind::flatten), "flatten"));
    spec.layers.push_back(named(linear(channels, kImageNetClasses), "fc"));
    return spec;
}

}  // namespace

ModelSpec vgg16() {
    return vgg("vgg16", kVgg16Config, /*batch_norm=*/false);
}
ModelSpec vgg16_bn() {
    return vgg("vgg16_bn", kVgg16Config, /*batch_norm=*/true);
}
ModelSpec resnet18() {
    return resnet("resnet18", basic_block, {2, 2, 2, 2});
}
ModelSpec resnet50() {
    return resnet("resnet50", bottleneck, {3, 4, 6, 3});
}

}  // namespace cudacnn::graph::torchvision
