// A trained model ready to run for cudacnn-eval and cudacnn-viz: its spec, weights and run settings from a
// cudacnn-train checkpoint or a state_dict file, an executor on the chosen backend holding them, and the
// class names; plus what both programs compute with it (logits of images and of their test-time
// augmentation views, FGSM).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/eval/preprocess.hpp"
#include "cudacnn/eval/tta.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::eval {

// Where the weights come from: --checkpoint (a cudacnn-train checkpoint: model spec, weights and the run's
// settings), or --weights (a state_dict in safetensors, e.g. a cudacnn-train --export or PyTorch's) with
// --model (a built-in name or FILE.json; default: the file's "model" metadata, which --export writes).
struct ModelSource {
    std::string checkpoint;
    std::string weights;
    std::string model;
};

struct LoadedModel {
    graph::ModelSpec spec;
    io::StateDict state;
    std::optional<train::TrainOptions> run;  // the checkpoint's run (dataset, data folder, seed, ...)
    int64_t epoch = 0;                       // the checkpoint's epoch; 0 for a weights file
    std::string source;                      // the file, for messages
};

// Throws Error naming the file: not a checkpoint (with --checkpoint), no model known for a weights file, a
// model the weights do not fit (every missing, unexpected or mis-shaped tensor listed).
LoadedModel load_model(const ModelSource& source);

// The names of the model's classes: the given dataset's, else those of the checkpoint's dataset when known
// without reading it (cifar10, cifar100, synthetic), else ImageNet's for an ImageNet model with 1,000 classes
// (is_imagenet_model), else "0", "1", ...
std::vector<std::string> class_names(const LoadedModel& model, const data::Dataset* dataset);

struct SessionOptions {
    graph::Backend backend = graph::Backend::cpu;
    int threads = 0;  // the fast CPU backend's; 0: one per core
    int64_t batch_size = 128;
    bool keep_activations = false;  // output(node) of every layer (activations, feature maps)
    bool input_gradient = false;    // FGSM
};

// The model on an executor, holding the loaded weights.
class Session {
  public:
    Session(LoadedModel model, const SessionOptions& options);

    const LoadedModel& model() const { return model_; }
    const graph::Graph& graph() const { return graph_; }
    graph::Executor& executor() { return *executor_; }
    int64_t batch_size() const { return options_.batch_size; }
    const Shape& input_shape() const { return graph_.spec.input; }  // (C, H, W)
    // How image files become this model's input (preprocessing_for: ImageNet's or the seed's).
    const Preprocessing& preprocessing() const { return preprocessing_; }

    // Pixels in [0, 1] (count, C, H, W) → the normalized batch the model reads (preprocessing().normalization).
    std::vector<float> normalize(const float* pixels, int64_t count) const;
    // The logits (count, classes) of pixel images, in batches; with `tta` the mean of the logits of each
    // image's views (tta_views: its mirror image, the windows of the padded image — the seed's training flip
    // and crop, so the model knows these views), summed in float in the views' order, then divided.
    HostTensor<float> logits(const float* pixels, int64_t count, const Tta& tta = {});
    // FGSM: each image moved by eps · sign(d loss / d pixel) for its label (the cross-entropy of the eval-mode
    // model), then clipped to [0, 1]. The gradient's sign with respect to pixels is that with respect to the
    // normalized input, since the std is positive; sign(0) is 0, as torch.sign's.
    std::vector<float> fgsm(const float* pixels, const int64_t* labels, int64_t count, double eps);
    // One image (C, H, W) forward with keep_activations: every node's output (1, ...), in graph order.
    std::vector<HostTensor<float>> activations(const float* pixels);

  private:
    void run_batch(const float* pixels, const int64_t* labels, int64_t count, bool backward);

    LoadedModel model_;
    graph::Graph graph_;
    SessionOptions options_;
    Preprocessing preprocessing_;
    std::unique_ptr<graph::Executor> executor_;
};

// uint8 records (count, C, H, W) → floats in [0, 1], as ToTensor: v / 255.
std::vector<float> to_unit_pixels(const uint8_t* images, int64_t count, int64_t image_bytes);
// Softmax of one row of logits, in double (stable: the maximum is subtracted first).
std::vector<double> softmax(const float* logits, int64_t classes);
// torch.argmax of one row: the first of equal maxima; a NaN ranks above every number.
int64_t argmax(const float* logits, int64_t classes);

}  // namespace cudacnn::eval
