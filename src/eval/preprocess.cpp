// Per-model image preprocessing: torchvision's ImageNet transforms or the seed's (see preprocess.hpp).
#include "cudacnn/eval/preprocess.hpp"

#include <fmt/format.h>

#include "cudacnn/error.hpp"
#include "cudacnn/train/setup.hpp"

namespace cudacnn::eval {

data::Image Preprocessing::apply(const data::Image& image) const {
    if (resize_shorter == 0) return data::fit_image(image, height, width);
    return data::center_crop(data::resize_shorter_side(image, resize_shorter), height, width);
}

std::string Preprocessing::describe() const {
    const data::Normalization& n = normalization;
    const std::string normalize = fmt::format("ToTensor + Normalize(mean ({:g}, {:g}, {:g}), std ({:g}, {:g}, {:g}))",
                                              n.mean[0], n.mean[1], n.mean[2], n.stddev[0], n.stddev[1], n.stddev[2]);
    if (resize_shorter == 0)
        return fmt::format("centred window of the input's aspect ratio resized to {}x{} (bilinear) + {}", height,
                           width, normalize);
    const std::string crop = height == width ? std::to_string(height) : fmt::format("({}, {})", height, width);
    return fmt::format("Resize({}) (bilinear) + CenterCrop({}) + {}", resize_shorter, crop, normalize);
}

bool is_imagenet_model(const std::string& model_name) {
    return model_name == "vgg16" || model_name == "vgg16_bn" || model_name == "resnet18" || model_name == "resnet50";
}

data::Normalization imagenet_normalization() { return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}; }

Preprocessing imagenet_preprocessing(int64_t crop_size, int64_t resize_size) {
    CUDACNN_CHECK(crop_size > 0 && resize_size >= crop_size,
                  "imagenet_preprocessing: Resize({}) then CenterCrop({}) needs 0 < crop <= resize", resize_size,
                  crop_size);
    return {crop_size, crop_size, resize_size, imagenet_normalization()};
}

Preprocessing preprocessing_for(const graph::ModelSpec& spec, const train::TrainOptions* run) {
    const int64_t height = spec.input[1], width = spec.input[2];
    if (run == nullptr && is_imagenet_model(spec.name) && height == width)
        return imagenet_preprocessing(height, height * 256 / 224);
    return {height, width, 0, run != nullptr ? train::run_normalization(*run) : data::cifar10_normalization()};
}

}  // namespace cudacnn::eval
