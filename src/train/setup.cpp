// The model, backend and dataset checks shared by the programs (see setup.hpp).
#include "cudacnn/train/setup.hpp"

#include <filesystem>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/image.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::train {

graph::ModelSpec resolve_model(const std::string& model) {
    const bool is_file = model.size() > 5 && model.compare(model.size() - 5, 5, ".json") == 0;
    if (is_file || std::filesystem::exists(model)) return graph::load_model_spec(model);
    return graph::builtin_model(model);
}

data::Normalization run_normalization(const TrainOptions& options) {
    if (options.augment && !options.augment_spec.empty()) {
        for (const data::AugmentOp& op : data::parse_augment_spec(options.augment_spec))
            if (op.kind == data::AugmentKind::normalize) return data::Normalization{op.norm_mean, op.norm_std};
    }
    return data::cifar10_normalization();
}

graph::Backend choose_backend(DeviceChoice device) {
    switch (device) {
        case DeviceChoice::cuda: return graph::Backend::gpu;
        case DeviceChoice::cpu: return graph::Backend::cpu;
        case DeviceChoice::cpu_reference: return graph::Backend::cpu_reference;
        case DeviceChoice::auto_: break;
    }
    return !kEmulated && gpu_status().available ? graph::Backend::gpu : graph::Backend::cpu;
}

std::string auto_device_note(DeviceChoice device, graph::Backend chosen) {
    if (device != DeviceChoice::auto_ || chosen != graph::Backend::cpu) return "";
    return kEmulated ? "--device auto chose the cpu: this is the emu flavour (its emulated GPU runs the kernels on "
                       "the CPU, far slower than the fast CPU path; --device cuda uses it)"
                     : "--device auto chose the cpu: " + gpu_status().description;
}

data::Splits load_splits(const TrainOptions& o, const graph::ModelSpec& spec) {
    data::Splits splits;
    if (o.dataset == "synthetic") {
        splits = data::make_synthetic({o.synthetic_train_size, o.synthetic_test_size, o.seed});
    } else if (o.dataset == "cifar10") {
        splits = data::load_cifar10(o.data_dir);
    } else if (o.dataset == "cifar100") {
        splits = data::load_cifar100(o.data_dir, o.cifar100_labels.value_or(data::Cifar100Labels::fine));
    } else if (o.dataset == "imagefolder") {
        CUDACNN_CHECK(spec.input.rank() == 3,
                      "--dataset imagefolder: model '{}' takes inputs {}, not images (C, H, W)", spec.name,
                      spec.input);
        splits = data::load_image_folder_splits(o.data_dir, spec.input[1], spec.input[2]);
    } else {
        CUDACNN_FAIL("--dataset {}: use cifar10, cifar100, imagefolder or synthetic", o.dataset);
    }
    if (o.limit_train) splits.train = splits.train.first(*o.limit_train);
    if (o.limit_test) splits.test = splits.test.first(*o.limit_test);
    return splits;
}

void check_classes(const graph::ModelSpec& spec, const data::Dataset& dataset) {
    CUDACNN_CHECK(spec.num_classes == dataset.num_classes,
                  "model '{}' has {} outputs but the dataset '{}' has {} classes; use a model spec with "
                  "\"num_classes\": {} (see docs/model-format.md)",
                  spec.name, spec.num_classes, dataset.name, dataset.num_classes, dataset.num_classes);
    CUDACNN_CHECK(spec.input == Shape({dataset.channels, dataset.height, dataset.width}),
                  "model '{}' takes inputs {} but the dataset '{}' has images ({}, {}, {})", spec.name, spec.input,
                  dataset.name, dataset.channels, dataset.height, dataset.width);
}

}  // namespace cudacnn::train
