// Small builders for the layers of the built-in model specs, and Sequential, which names layers as the
// children of a PyTorch nn.Sequential ("features.0", "features.1", …) so state_dict names match PyTorch's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/graph/model.hpp"

namespace cudacnn::graph::detail {

inline LayerSpec of_kind(LayerKind kind) {
    LayerSpec layer;
    layer.kind = kind;
    return layer;
}

inline LayerSpec conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t padding,
                        int64_t stride = 1, bool bias = true) {
    LayerSpec layer = of_kind(LayerKind::conv2d);
    layer.in_channels = in_channels;
    layer.out_channels = out_channels;
    layer.kernel_size = kernel_size;
    layer.conv.padding = padding;
    layer.conv.stride = stride;
    layer.bias = bias;
    return layer;
}

inline LayerSpec batch_norm2d(int64_t num_features) {
    LayerSpec layer = of_kind(LayerKind::batch_norm2d);
    layer.num_features = num_features;
    return layer;
}

inline LayerSpec max_pool2d(int64_t kernel_size, std::optional<int64_t> stride, int64_t padding = 0) {
    LayerSpec layer = of_kind(LayerKind::max_pool2d);
    layer.max_pool.kernel_size = kernel_size;
    if (stride) layer.max_pool.stride = cpu::Pair2d(*stride);
    layer.max_pool.padding = padding;
    return layer;
}

inline LayerSpec adaptive_avg_pool2d(int64_t height, int64_t width) {
    LayerSpec layer = of_kind(LayerKind::adaptive_avg_pool2d);
    layer.output_size = cpu::Pair2d(height, width);
    return layer;
}

inline LayerSpec dropout(LayerKind kind, double p) {
    LayerSpec layer = of_kind(kind);
    layer.p = p;
    return layer;
}

inline LayerSpec linear(int64_t in_features, int64_t out_features) {
    LayerSpec layer = of_kind(LayerKind::linear);
    layer.in_features = in_features;
    layer.out_features = out_features;
    return layer;
}

inline LayerSpec named(LayerSpec layer, std::string name, std::vector<std::string> inputs = {}) {
    layer.name = std::move(name);
    layer.inputs = std::move(inputs);
    return layer;
}

// Appends layers named as the children of a PyTorch nn.Sequential attribute: "<prefix>.0", "<prefix>.1", …
class Sequential {
  public:
    Sequential(std::vector<LayerSpec>& layers, std::string prefix)
        : layers_(layers), prefix_(std::move(prefix)) {}

    Sequential& operator<<(LayerSpec layer) {
        layer.name = fmt::format("{}.{}", prefix_, next_index_++);
        layers_.push_back(std::move(layer));
        return *this;
    }

  private:
    std::vector<LayerSpec>& layers_;
    std::string prefix_;
    int next_index_ = 0;
};

}  // namespace cudacnn::graph::detail
