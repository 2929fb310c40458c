// torchvision's ImageNet classifiers as built-in model specs (torchvision_models.cpp), registered in
// builtin_models.cpp.
#pragma once

#include "cudacnn/graph/model.hpp"

namespace cudacnn::graph::torchvision {

ModelSpec vgg16();     // torchvision.models.vgg16(): 138,357,544 parameters
ModelSpec vgg16_bn();  // torchvision.models.vgg16_bn(): 138,365,992 parameters
ModelSpec resnet18();  // torchvision.models.resnet18(): 11,689,512 parameters
ModelSpec resnet50();  // torchvision.models.resnet50(): 25,557,032 parameters

}  // namespace cudacnn::graph::torchvision
