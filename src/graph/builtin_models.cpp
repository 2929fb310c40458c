// The built-in model specs: cifar_cnn (DESIGN.md's CifarCNN, with PyTorch's state_dict names), small_cnn, and
// torchvision's vgg16, vgg16_bn, resnet18 and resnet50 (torchvision_models.cpp).
#include "cudacnn/graph/model.hpp"

#include <optional>
#include <utility>

#include "cudacnn/error.hpp"
#include "layer_builders.hpp"
#include "spec_internal.hpp"
#include "torchvision_models.hpp"

namespace cudacnn::graph {

namespace {

using namespace detail;  // the layer builders and Sequential (layer_builders.hpp)

// The CifarCNN of DESIGN.md: conv_layer and fc_layer are nn.Sequential, and forward() flattens with
// x.view(x.size(0), -1) between them (the "flatten" layer, which has no state).
ModelSpec cifar_cnn() {
    ModelSpec spec{"cifar_cnn", Shape{3, 32, 32}, 10, {}};
    const LayerSpec relu = of_kind(LayerKind::relu);
    Sequential conv_layer(spec.layers, "conv_layer");
    conv_layer << conv2d(3, 32, 3, 1) << batch_norm2d(32) << relu          // (32, 32, 32)
               << conv2d(32, 64, 3, 1) << relu << max_pool2d(2, 2)         // (64, 16, 16)
               << conv2d(64, 128, 3, 1) << batch_norm2d(128) << relu       // (128, 16, 16)
               << conv2d(128, 128, 3, 1) << relu << max_pool2d(2, 2)       // (128, 8, 8)
               << dropout(LayerKind::dropout2d, 0.05)                      // (128, 8, 8)
               << conv2d(128, 256, 3, 1) << batch_norm2d(256) << relu      // (256, 8, 8)
               << conv2d(256, 256, 3, 1) << relu << max_pool2d(2, 2);      // (256, 4, 4)
    spec.layers.push_back(named(of_kind(LayerKind::flatten), "flatten"));  // (4096)
    Sequential fc_layer(spec.layers, "fc_layer");
    fc_layer << dropout(LayerKind::dropout, 0.1) << linear(4096, 1024) << relu  // (1024)
             << linear(1024, 512) << relu << dropout(LayerKind::dropout, 0.1)   // (512)
             << linear(512, 10);                                                // (10)
    return spec;
}

// A few thousand parameters with every common layer, for quick runs and tests on the CPU.
ModelSpec small_cnn() {
    ModelSpec spec{"small_cnn", Shape{3, 32, 32}, 10, {}};
    const LayerSpec relu = of_kind(LayerKind::relu);
    Sequential features(spec.layers, "features");
    features << conv2d(3, 8, 3, 1) << batch_norm2d(8) << relu << max_pool2d(2, std::nullopt)  // (8, 16, 16)
             << conv2d(8, 16, 3, 1) << batch_norm2d(16) << relu << max_pool2d(2, std::nullopt);  // (16, 8, 8)
    spec.layers.push_back(named(of_kind(LayerKind::flatten), "flatten"));                        // (1024)
    spec.layers.push_back(named(linear(1024, 10), "classifier"));                                // (10)
    return spec;
}

const std::vector<std::pair<std::string, ModelSpec (*)()>>& builtins() {
    static const std::vector<std::pair<std::string, ModelSpec (*)()>> models = {
        {"cifar_cnn", cifar_cnn},
        {"small_cnn", small_cnn},
        {"vgg16", torchvision::vgg16},
        {"vgg16_bn", torchvision::vgg16_bn},
        {"resnet18", torchvision::resnet18},
        {"resnet50", torchvision::resnet50}};
    return models;
}

}  // namespace

std::vector<std::string> builtin_model_names() {
    std::vector<std::string> names;
    for (const auto& [name, make] : builtins()) names.push_back(name);
    return names;
}

ModelSpec builtin_model(const std::string& name) {
    for (const auto& [builtin_name, make] : builtins()) {
        if (name != builtin_name) continue;
        ModelSpec spec = make();
        detail::fill_default_inputs(spec.layers);
        detail::resolve_layer_inputs(spec, "built-in " + name);  // a slip here fails every test that uses it
        return spec;
    }
    CUDACNN_FAIL(
        "there is no built-in model '{}'; the built-in models are {} (or load a JSON spec, see "
        "docs/model-format.md)",
        name, fmt::join(builtin_model_names(), ", "));
}

}  // namespace cudacnn::graph
