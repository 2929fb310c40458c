// How an image file becomes a model's input, chosen by the model: for torchvision's pretrained ImageNet
// architectures (vgg16, vgg16_bn, resnet18, resnet50) their weights.transforms(), for every other model the
// centred window of the input's aspect ratio resized to it and the seed's (or the training run's) Normalize;
// and the 1,000 ImageNet class names those models predict.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/data/image.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::eval {

struct Preprocessing {
    int64_t height = 0, width = 0;  // the model's input
    // > 0: torchvision's ImageClassification geometry, Resize(resize_shorter) of the shorter side, then
    // CenterCrop((height, width)); 0: data::fit_image to (height, width).
    int64_t resize_shorter = 0;
    data::Normalization normalization;  // after ToTensor (v / 255)

    data::Image apply(const data::Image& image) const;  // (3, height, width) bytes, before ToTensor
    std::string describe() const;  // "Resize(256) + CenterCrop(224) + ToTensor + Normalize(mean (...), std (...))"
};

// vgg16, vgg16_bn, resnet18 and resnet50: torchvision's architectures, whose pretrained weights expect
// ImageNet's preprocessing and predict ImageNet's 1,000 classes.
bool is_imagenet_model(const std::string& model_name);
// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
data::Normalization imagenet_normalization();
// weights.transforms() of their IMAGENET1K_V1 weights: Resize(resize_size) (bilinear, antialiased: PIL's),
// CenterCrop(crop_size), ToTensor, Normalize with imagenet_normalization(); torchvision's sizes are 224 and 256.
Preprocessing imagenet_preprocessing(int64_t crop_size, int64_t resize_size);
// The model's: an ImageNet model's name with a square input S gives imagenet_preprocessing(S, S · 256 / 224)
// (Resize(256) + CenterCrop(224) at torchvision's 224) unless it comes with a training run (`run`, a
// checkpoint's); every other model fits images to its input and normalizes them as its run did (the seed's
// Normalize without one).
Preprocessing preprocessing_for(const graph::ModelSpec& spec, const train::TrainOptions* run);

// The 1,000 names in class-index order (torchvision's meta["categories"]; generated: src/eval/imagenet_classes.cpp,
// also shipped as models/imagenet_classes.txt).
const std::vector<std::string>& imagenet_class_names();

}  // namespace cudacnn::eval
