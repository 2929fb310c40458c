// cudacnn-viz's pictures as library functions (the seed tutorial's plots): a conv layer's filters, every
// layer's output for one image, every channel of one layer's output, training curves from a --metrics file,
// an FGSM adversarial example, and samples beside their augmented versions; and the command line that drives
// them.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/viz/canvas.hpp"

namespace cudacnn::viz {

// The node of the layer named `name` (its spec name, e.g. "conv_layer.0"); an Error lists the layers (with the
// nearest name) when there is none.
int find_layer(const graph::Graph& graph, const std::string& name);

// A conv layer's kernels as a grid (the first conv layer when `layer` is empty), each filter standardized as
// the seed does: (w − mean) / std + 0.5 over the filter's values (population std), clipped to [0, 1]. With 3
// input channels a filter is one RGB tile; otherwise one grey tile per input channel, a row per filter, at
// most `max_filters` rows.
Canvas filters_picture(const eval::LoadedModel& model, const std::string& layer, int64_t max_filters);

// One image (fitted to the model's input, pixels (3, H, W) in [0, 1]) through the model: the image, then per
// layer the mean over channels of its output (a vector of features as a square), titled with the layer's
// name, coloured by viridis over each tile's own range. The session needs keep_activations.
Canvas activations_picture(eval::Session& session, const std::vector<float>& pixels);
// Every channel of one layer's output (C, H, W) for the image, a tile each, over each tile's own range.
Canvas feature_maps_picture(eval::Session& session, const std::vector<float>& pixels, const std::string& layer);

// Loss and accuracy per epoch (train and test) from a cudacnn-train --metrics file (CSV or JSON lines): two
// plots, one above the other, with axes, ticks and legends.
Canvas curves_picture(const std::string& metrics_path);

struct AdversarialResult {
    Canvas picture;  // original, perturbation (0.5 + 0.5 · sign per channel) and perturbed image, captioned
    int64_t original_class = 0, adversarial_class = 0;
    double original_probability = 0.0, adversarial_probability = 0.0;
};
// FGSM on one image (eps on the [0, 1] pixel scale) against `label` (−1: the model's own prediction). The
// session needs input_gradient.
AdversarialResult adversarial_picture(eval::Session& session, const std::vector<float>& pixels, double eps,
                                      int64_t label, const std::vector<std::string>& class_names);

// An image file as the model's input, (3, H, W) in [0, 1]: read and shaped as the session's preprocessing says
// (torchvision's Resize + CenterCrop for its ImageNet models, data::fit_image for the others); the session
// applies the normalization.
std::vector<float> load_input_image(const std::string& path, const eval::Preprocessing& preprocessing);

// ---- augment ----

// The spec as drawn: every normalize op becomes the identity (mean 0, std 1), since its output leaves [0, 1];
// the ops keep their places, so every other op draws exactly what it draws in training.
data::AugmentSpec display_spec(const data::AugmentSpec& spec);

struct AugmentSample {
    std::string name;        // under the original: the class, or the file with its folder ("cat/0001.jpg")
    data::FloatImage image;  // (C, H, W) in [0, 1] (ToTensor's output), C = 1 or 3
};
// The first `count` records of a dataset (named by class), or image files fitted (data::fit_image) to
// size × size (named by file).
std::vector<AugmentSample> augment_samples(const data::Dataset& dataset, int64_t count);
std::vector<AugmentSample> augment_samples(const std::vector<std::string>& paths, int64_t size);

// A row per sample: the original (captioned "original" and its name), then `columns` versions, version j =
// data::augment_image(display_spec(spec), image, seed, epoch j, position = the row), i.e. what epoch j of a
// training run with this seed draws for that position. Values are clamped to [0, 1], each pixel drawn
// scale × scale. `title` (wrapped at commas to about the grid's width) heads the grid, with a line saying that
// normalize ops were skipped when the spec has any.
Canvas augment_picture(const std::vector<AugmentSample>& samples, const data::AugmentSpec& spec, int64_t columns,
                       uint64_t seed, int scale, const std::string& title);

// The whole command (args without argv[0]): 0, 1 for an Error (message on `err`), 2 for a usage error.
int viz_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// The command line checked as viz_main checks it, without running the command: UsageError when it would be
// refused (the command-line fuzz target's entry).
void check_viz_args(const std::vector<std::string>& args);
std::string viz_usage();

}  // namespace cudacnn::viz
