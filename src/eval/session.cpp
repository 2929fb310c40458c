// A trained model on an executor for cudacnn-eval and cudacnn-viz (see session.hpp).
#include "cudacnn/eval/session.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"
#include "cudacnn/safetensors.hpp"
#include "cudacnn/train/setup.hpp"

namespace cudacnn::eval {
namespace {

LoadedModel from_checkpoint(const std::string& path) {
    CUDACNN_CHECK(SafetensorsFile::read(path).metadata().count("cudacnn.checkpoint") != 0,
                  "--checkpoint {}: this file holds weights but no model or run (not a cudacnn-train checkpoint); "
                  "give it as --weights {} with --model NAME", path, path);
    io::Checkpoint checkpoint = io::load_checkpoint(path);
    CUDACNN_CHECK(checkpoint.meta.contains("model") && checkpoint.meta.contains("options"),
                  "--checkpoint {}: its metadata has no \"model\" or \"options\" (not written by cudacnn-train)", path);
    LoadedModel model;
    model.spec = graph::parse_model_spec(checkpoint.meta.at("model"), path);
    model.run = train::options_from_json(checkpoint.meta.at("options"));
    model.epoch = checkpoint.meta.value("epoch", int64_t{0});
    model.state = std::move(checkpoint.model);
    model.source = path;
    return model;
}

LoadedModel from_weights(const std::string& path, std::string model_name) {
    if (model_name.empty()) {
        const auto metadata = SafetensorsFile::read(path).metadata();
        const auto found = metadata.find("model");
        CUDACNN_CHECK(found != metadata.end(),
                      "--weights {}: the file does not say which model it is for; add --model NAME (e.g. cifar_cnn) or "
                      "--model FILE.json", path);
        model_name = found->second;
    }
    LoadedModel model;
    model.spec = train::resolve_model(model_name);
    model.state = io::load_state_dict(path);
    model.source = path;
    return model;
}

}  // namespace

LoadedModel load_model(const ModelSource& source) {
    CUDACNN_CHECK(source.checkpoint.empty() != source.weights.empty(),
                  "give the model's weights with --checkpoint PATH or with --weights FILE.safetensors, not both");
    LoadedModel model = source.checkpoint.empty() ? from_weights(source.weights, source.model)
                                                  : from_checkpoint(source.checkpoint);
    if (!source.checkpoint.empty() && !source.model.empty()) {
        const graph::ModelSpec named = train::resolve_model(source.model);
        CUDACNN_CHECK(named == model.spec, "--checkpoint {} is of model '{}', not of --model {}; drop --model (the "
                      "checkpoint holds its model)", source.checkpoint, model.spec.name, source.model);
    }
    return model;
}

std::vector<std::string> class_names(const LoadedModel& model, const data::Dataset* dataset) {
    if (dataset != nullptr && static_cast<int64_t>(dataset->class_names.size()) == model.spec.num_classes)
        return dataset->class_names;
    if (model.run) {
        const bool coarse = model.run->cifar100_labels == data::Cifar100Labels::coarse;
        const std::string kind = model.run->dataset == "cifar100" && coarse ? "cifar100_coarse" : model.run->dataset;
        if (kind == "cifar10" || kind == "cifar100" || kind == "cifar100_coarse" || kind == "synthetic") {
            std::vector<std::string> names = data::known_class_names(kind);
            if (static_cast<int64_t>(names.size()) == model.spec.num_classes) return names;
        }
    }
    if (is_imagenet_model(model.spec.name) && model.spec.num_classes == 1000) return imagenet_class_names();
    std::vector<std::string> names;
    for (int64_t c = 0; c < model.spec.num_classes; ++c) names.push_back(std::to_string(c));
    return names;
}

Session::Session(LoadedModel model, const SessionOptions& options)
    : model_(std::move(model)),
      graph_(graph::build_graph(model_.spec)),
      options_(options),
      preprocessing_(preprocessing_for(model_.spec, model_.run ? &*model_.run : nullptr)) {
    CUDACNN_CHECK(graph_.spec.input[0] == 3, "model '{}' reads {} channels; cudacnn-eval and cudacnn-viz feed RGB "
                  "images (3 channels)", graph_.spec.name, graph_.spec.input[0]);
    graph::ExecutorOptions e;
    e.backend = options.backend;
    e.threads = options.threads;
    e.batch_size = options.batch_size;
    e.dropout = false;
    e.keep_activations = options.keep_activations;
    e.input_gradient = options.input_gradient;
    executor_ = std::make_unique<graph::Executor>(graph_, e);
    executor_->initialize(0);  // optimizer state and anything the file does not hold; the weights replace it
    executor_->load_model_state(model_.state, model_.source);
}

std::vector<float> Session::normalize(const float* pixels, int64_t count) const {
    const int64_t plane = input_shape()[1] * input_shape()[2];
    std::vector<float> x(static_cast<std::size_t>(count * 3 * plane));
    for (int64_t n = 0; n < count; ++n)
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t i = 0; i < plane; ++i) {
                const int64_t k = (n * 3 + c) * plane + i;
                x[k] = (pixels[k] - preprocessing_.normalization.mean[c]) / preprocessing_.normalization.stddev[c];
            }
    return x;
}

void Session::run_batch(const float* pixels, const int64_t* labels, int64_t count, bool backward) {
    const std::vector<float> x = normalize(pixels, count);
    std::vector<int64_t> no_labels;
    if (labels == nullptr) no_labels.assign(static_cast<std::size_t>(count), 0);  // the loss is not used
    executor_->set_batch(x.data(), labels != nullptr ? labels : no_labels.data(), count);
    if (backward) {
        executor_->eval_forward_backward();
    } else {
        executor_->eval_step();
    }
}

HostTensor<float> Session::logits(const float* pixels, int64_t count, const Tta& tta) {
    const int64_t classes = graph_.spec.num_classes, image = input_shape().numel();
    const int64_t channels = input_shape()[0], height = input_shape()[1], width = input_shape()[2];
    const std::vector<TtaView> views = tta_views(tta.views);
    const TtaView as_is{Window::centre, false};
    HostTensor<float> out(Shape{count, classes});
    std::vector<float> view_pixels, sum;
    for (int64_t first = 0; first < count; first += options_.batch_size) {
        const int64_t n = std::min(options_.batch_size, count - first);
        const float* batch = pixels + first * image;
        sum.assign(static_cast<std::size_t>(n * classes), 0.0f);
        for (const TtaView& view : views) {
            if (view == as_is) {
                run_batch(batch, nullptr, n, false);
            } else {
                view_pixels.resize(static_cast<std::size_t>(n * image));
                for (int64_t i = 0; i < n; ++i)
                    tta_view(batch + i * image, channels, height, width, tta.padding, view.window, view.mirror,
                             view_pixels.data() + i * image);
                run_batch(view_pixels.data(), nullptr, n, false);
            }
            const HostTensor<float> view_logits = executor_->logits();
            for (int64_t k = 0; k < n * classes; ++k) sum[k] += view_logits[k];
        }
        const auto view_count = static_cast<float>(views.size());
        for (int64_t k = 0; k < n * classes; ++k) out[first * classes + k] = sum[k] / view_count;
    }
    executor_->read_metrics();  // this pass's metrics are not reported; the caller counts from the logits
    return out;
}

std::vector<float> Session::fgsm(const float* pixels, const int64_t* labels, int64_t count, double eps) {
    CUDACNN_CHECK(options_.input_gradient, "Session::fgsm: the session was built without input_gradient");
    const int64_t image = input_shape().numel();
    std::vector<float> out(pixels, pixels + count * image);
    for (int64_t first = 0; first < count; first += options_.batch_size) {
        const int64_t n = std::min(options_.batch_size, count - first);
        run_batch(pixels + first * image, labels + first, n, true);
        const HostTensor<float> gradient = executor_->input_gradient();
        for (int64_t k = 0; k < n * image; ++k) {
            const float g = gradient[k];
            const float step = g > 0 ? 1.0f : g < 0 ? -1.0f : 0.0f;
            float& v = out[first * image + k];
            v = std::clamp(static_cast<float>(v + eps * step), 0.0f, 1.0f);
        }
    }
    executor_->read_metrics();
    return out;
}

std::vector<HostTensor<float>> Session::activations(const float* pixels) {
    CUDACNN_CHECK(options_.keep_activations, "Session::activations: the session was built without keep_activations");
    run_batch(pixels, nullptr, 1, false);
    executor_->read_metrics();
    std::vector<HostTensor<float>> outputs;
    for (int node = 0; node < static_cast<int>(graph_.nodes.size()); ++node) outputs.push_back(executor_->output(node));
    return outputs;
}

std::vector<float> to_unit_pixels(const uint8_t* images, int64_t count, int64_t image_bytes) {
    std::vector<float> pixels(static_cast<std::size_t>(count * image_bytes));
    for (std::size_t k = 0; k < pixels.size(); ++k) pixels[k] = static_cast<float>(images[k]) / 255.0f;
    return pixels;
}

std::vector<double> softmax(const float* logits, int64_t classes) {
    double top = logits[0];
    for (int64_t c = 1; c < classes; ++c) top = std::max(top, static_cast<double>(logits[c]));
    std::vector<double> p(static_cast<std::size_t>(classes));
    double total = 0.0;
    for (int64_t c = 0; c < classes; ++c) total += p[c] = std::exp(static_cast<double>(logits[c]) - top);
    for (double& v : p) v /= total;
    return p;
}

int64_t argmax(const float* row, int64_t classes) {
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c) {
        if (std::isnan(row[best])) break;
        if (std::isnan(row[c]) || row[c] > row[best]) best = c;
    }
    return best;
}

}  // namespace cudacnn::eval
