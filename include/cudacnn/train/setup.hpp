// What every program that runs a model needs before its first step: the model spec named on the command line,
// the backend that --device picks, the datasets of --dataset and --data, and the check that a model fits a
// dataset.
#pragma once

#include <string>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::train {

// A built-in name, or a JSON file (anything that ends in .json or names an existing file).
graph::ModelSpec resolve_model(const std::string& model);

// auto: a real GPU when there is one. The emu flavour's emulated GPU runs the kernels on the CPU, far slower
// than the reference path, so it is used only when asked for with --device cuda.
graph::Backend choose_backend(DeviceChoice device);
// Why --device auto chose the cpu, one line (empty when it chose a GPU or the device was named).
std::string auto_device_note(DeviceChoice device, graph::Backend chosen);

// The training and test sets that the options name: synthetic (--synthetic-size, --seed), cifar10, cifar100
// (--cifar100-labels) or imagefolder (data::load_image_folder_splits, every image fitted to the model's input
// height and width), each cut to --limit-train / --limit-test.
data::Splits load_splits(const TrainOptions& options, const graph::ModelSpec& spec);

// The Normalize of a run's inputs, training and test alike: the --augment spec's own normalize op when it
// has one, else the seed's CIFAR-10 mean and std (every dataset's default).
data::Normalization run_normalization(const TrainOptions& options);

// Throws an Error naming both unless the model's class count and input shape are the dataset's.
void check_classes(const graph::ModelSpec& spec, const data::Dataset& dataset);

}  // namespace cudacnn::train
