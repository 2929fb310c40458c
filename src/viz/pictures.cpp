// The pictures of cudacnn-viz: filters, activations, feature maps, curves and adversarial examples (see
// commands.hpp).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/viz/commands.hpp"
#include "src/train/metrics_log.hpp"

namespace cudacnn::viz {
namespace {

// Per-sample shape as text: "(32, 16, 16)".
std::string shape_text(const Shape& shape) {
    std::string text = "(";
    for (int i = 0; i < shape.rank(); ++i) text += (i > 0 ? "," : "") + std::to_string(shape[i]);
    return text + ")";
}

// Pixels per value so that a tile is about `target` pixels wide (at least 1).
int scale_for(int64_t side, int64_t target) { return static_cast<int>(std::max<int64_t>(1, target / std::max<int64_t>(side, 1))); }

// `planes` maps of (rows, columns) values, shrunk by averaging factor × factor blocks (the last row and column
// of blocks may be partial) where the longer side exceeds `target`, so that a large map (VGG's 224 × 224) makes
// a tile of the size small maps reach by scale_for; maps that fit are returned as they are.
struct Maps {
    std::vector<float> values;  // (planes, rows, columns)
    int64_t rows = 0, columns = 0;
};
Maps fitted_maps(const float* values, int64_t planes, int64_t rows, int64_t columns, int64_t target) {
    const int64_t factor = (std::max(rows, columns) + target - 1) / target;
    if (factor <= 1) return {std::vector<float>(values, values + planes * rows * columns), rows, columns};
    Maps out;
    out.rows = (rows + factor - 1) / factor, out.columns = (columns + factor - 1) / factor;
    out.values.resize(static_cast<std::size_t>(planes * out.rows * out.columns));
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t r = 0; r < out.rows; ++r)
            for (int64_t c = 0; c < out.columns; ++c) {
                double sum = 0.0;
                int64_t count = 0;
                for (int64_t y = r * factor; y < std::min(rows, (r + 1) * factor); ++y)
                    for (int64_t x = c * factor; x < std::min(columns, (c + 1) * factor); ++x, ++count)
                        sum += values[(p * rows + y) * columns + x];
                out.values[(p * out.rows + r) * out.columns + c] = static_cast<float>(sum / static_cast<double>(count));
            }
    return out;
}

// A vector of F features as a near-square map (the rest of the last row takes the minimum, so it reads as empty).
Canvas feature_square(const float* values, int64_t count, int64_t target) {
    const auto columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
    const int64_t rows = (count + columns - 1) / columns;
    std::vector<float> square(static_cast<std::size_t>(rows * columns), *std::min_element(values, values + count));
    std::copy(values, values + count, square.begin());
    const Maps fitted = fitted_maps(square.data(), 1, rows, columns, target);
    return value_map(fitted.values.data(), fitted.rows, fitted.columns, scale_for(fitted.columns, target), viridis);
}

// shrink: a larger image is averaged down to about `target` (fitted_maps); otherwise it keeps every pixel.
Canvas image_tile(const std::vector<float>& pixels, const Shape& input, int64_t target, bool shrink = false) {
    if (!shrink) return rgb_image(pixels.data(), input[1], input[2], scale_for(input[2], target));
    const Maps fitted = fitted_maps(pixels.data(), 3, input[1], input[2], target);
    return rgb_image(fitted.values.data(), fitted.rows, fitted.columns, scale_for(fitted.columns, target));
}

// The seed's standardization of one filter: zero mean, unit (population) std, plus 0.5, clipped to [0, 1].
std::vector<float> standardized(const float* w, int64_t count) {
    double mean = 0.0, squares = 0.0;
    for (int64_t k = 0; k < count; ++k) mean += w[k];
    mean /= static_cast<double>(count);
    for (int64_t k = 0; k < count; ++k) squares += (w[k] - mean) * (w[k] - mean);
    const double stddev = std::sqrt(squares / static_cast<double>(count));
    std::vector<float> out(static_cast<std::size_t>(count));
    for (int64_t k = 0; k < count; ++k) {
        const double z = stddev > 0 ? (w[k] - mean) / stddev : 0.0;
        out[k] = static_cast<float>(std::clamp(z + 0.5, 0.0, 1.0));
    }
    return out;
}

// Values already in [0, 1] as grey levels (not stretched: the seed's clip is what the picture shows).
Canvas grey_tile(const float* values, int64_t rows, int64_t columns, int scale) {
    Canvas tile(columns * scale, rows * scale);
    for (int64_t y = 0; y < rows; ++y)
        for (int64_t x = 0; x < columns; ++x) tile.fill(x * scale, y * scale, scale, scale, grey(values[y * columns + x]));
    return tile;
}

}  // namespace

int find_layer(const graph::Graph& graph, const std::string& name) {
    const int node = graph.find_node(name);
    if (node >= 0) return node;
    std::string names, nearest;
    std::size_t best = 0;
    for (const graph::Node& n : graph.nodes) {
        names += (names.empty() ? "" : ", ") + n.spec.name;
        const std::size_t distance = train::edit_distance(name, n.spec.name);
        if (nearest.empty() || distance < best) nearest = n.spec.name, best = distance;
    }
    CUDACNN_FAIL("--layer {}: model '{}' has no such layer{}; its layers: {}", name, graph.spec.name,
                 best <= std::max<std::size_t>(2, name.size() / 3) ? fmt::format(" (did you mean '{}'?)", nearest) : "",
                 names);
}

Canvas filters_picture(const eval::LoadedModel& model, const std::string& layer, int64_t max_filters) {
    const graph::Graph graph = graph::build_graph(model.spec);
    int node = -1;
    if (layer.empty()) {
        for (int i = 0; i < static_cast<int>(graph.nodes.size()) && node < 0; ++i)
            if (graph.nodes[i].spec.kind == graph::LayerKind::conv2d) node = i;
        CUDACNN_CHECK(node >= 0, "model '{}' has no conv2d layer, so no filters to show", model.spec.name);
    } else {
        node = find_layer(graph, layer);
        CUDACNN_CHECK(graph.nodes[node].spec.kind == graph::LayerKind::conv2d, "--layer {}: a {} layer, not a conv2d; "
                      "filters shows a convolution's kernels", layer, graph::layer_kind_name(graph.nodes[node].spec.kind));
    }
    const std::string name = graph.nodes[node].spec.name;
    const HostTensor<float>& w = model.state.f32(name + ".weight");  // (OC, IC/groups, KH, KW)
    const int64_t filters = w.dim(0), channels = w.dim(1), kh = w.dim(2), kw = w.dim(3);
    const int64_t shown = std::min(filters, max_filters);
    const int scale = scale_for(kw, channels == 3 ? 48 : 24);
    std::vector<Tile> tiles;
    for (int64_t f = 0; f < shown; ++f) {
        const std::vector<float> z = standardized(w.data() + f * channels * kh * kw, channels * kh * kw);
        if (channels == 3) {
            tiles.push_back({rgb_image(z.data(), kh, kw, scale), "", std::to_string(f)});
            continue;
        }
        for (int64_t c = 0; c < channels; ++c) tiles.push_back({grey_tile(z.data() + c * kh * kw, kh, kw, scale), "", ""});
    }
    const std::string title = channels == 3
        ? fmt::format("{} filters of {} ({}x{}, RGB)", shown, name, kh, kw)
        : fmt::format("{}: {} of {} filters (rows) x {} input channels", name, shown, filters, channels);
    return tile_grid(tiles, channels == 3 ? 8 : channels, title);
}

Canvas activations_picture(eval::Session& session, const std::vector<float>& pixels) {
    const graph::Graph& graph = session.graph();
    const std::vector<HostTensor<float>> outputs = session.activations(pixels.data());
    std::vector<Tile> tiles;
    tiles.push_back(
        {image_tile(pixels, session.input_shape(), 96, true), "input", shape_text(session.input_shape())});
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const Shape& shape = graph.nodes[i].output;
        const HostTensor<float>& y = outputs[i];
        Canvas picture;
        if (shape.rank() == 3) {
            const int64_t plane = shape[1] * shape[2];
            std::vector<float> mean(static_cast<std::size_t>(plane), 0.0f);
            for (int64_t c = 0; c < shape[0]; ++c)
                for (int64_t k = 0; k < plane; ++k) mean[k] += y[c * plane + k] / static_cast<float>(shape[0]);
            const Maps fitted = fitted_maps(mean.data(), 1, shape[1], shape[2], 96);
            picture = value_map(fitted.values.data(), fitted.rows, fitted.columns, scale_for(fitted.columns, 96),
                                viridis);
        } else {
            picture = feature_square(y.data(), y.numel(), 96);
        }
        tiles.push_back({picture, graph.nodes[i].spec.name, shape_text(shape)});
    }
    return tile_grid(tiles, 6, fmt::format("{}: every layer's output (mean over channels)", graph.spec.name));
}

Canvas feature_maps_picture(eval::Session& session, const std::vector<float>& pixels, const std::string& layer) {
    const graph::Graph& graph = session.graph();
    const int node = find_layer(graph, layer);
    const Shape& shape = graph.nodes[node].output;
    CUDACNN_CHECK(shape.rank() == 3, "--layer {}: its output is {} features, not maps (C, H, W); feature-maps needs a "
                  "convolution-side layer", layer, shape_text(shape));
    const HostTensor<float> y = session.activations(pixels.data())[node];
    const int64_t plane = shape[1] * shape[2];
    std::vector<Tile> tiles;
    for (int64_t c = 0; c < shape[0]; ++c)
        tiles.push_back({value_map(y.data() + c * plane, shape[1], shape[2], scale_for(shape[2], 64), viridis),
                         std::to_string(c), ""});
    const auto columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(shape[0]))));
    return tile_grid(tiles, std::max<int64_t>(columns, 4),
                     fmt::format("{}: {} channels of {}x{}", layer, shape[0], shape[1], shape[2]));
}

Canvas curves_picture(const std::string& metrics_path) {
    const std::vector<train::EpochRow> rows = train::read_metrics_file(metrics_path);
    Series train_loss{"train", {}, {}, Rgb{31, 119, 180}}, test_loss{"test", {}, {}, Rgb{255, 127, 14}};
    Series train_accuracy = train_loss, test_accuracy = test_loss;
    for (const train::EpochRow& r : rows) {
        const auto epoch = static_cast<double>(r.epoch);
        for (Series* s : {&train_loss, &test_loss, &train_accuracy, &test_accuracy}) s->x.push_back(epoch);
        train_loss.y.push_back(r.train_loss);
        test_loss.y.push_back(r.test_loss);
        train_accuracy.y.push_back(r.train_accuracy);
        test_accuracy.y.push_back(r.test_accuracy);
    }
    const Canvas loss = line_plot({train_loss, test_loss}, {"Loss", "epoch", "cross-entropy", true}, 640, 320);
    const Canvas accuracy = line_plot({train_accuracy, test_accuracy}, {"Accuracy", "epoch", "accuracy (%)", true}, 640, 320);
    return stacked({loss, accuracy}, 4);
}

AdversarialResult adversarial_picture(eval::Session& session, const std::vector<float>& pixels, double eps,
                                      int64_t label, const std::vector<std::string>& names) {
    const Shape& input = session.input_shape();
    const int64_t classes = session.graph().spec.num_classes;
    CUDACNN_CHECK(label >= -1 && label < classes, "adversarial: label {} is not a class of the model (0 to {})", label,
                  classes - 1);
    AdversarialResult r;
    const HostTensor<float> before = session.logits(pixels.data(), 1);
    const std::vector<double> p = eval::softmax(before.data(), classes);
    r.original_class = eval::argmax(before.data(), classes);
    r.original_probability = p[r.original_class];
    const int64_t target = label >= 0 ? label : r.original_class;
    const std::vector<float> attacked = session.fgsm(pixels.data(), &target, 1, eps);
    const HostTensor<float> after = session.logits(attacked.data(), 1);
    const std::vector<double> q = eval::softmax(after.data(), classes);
    r.adversarial_class = eval::argmax(after.data(), classes);
    r.adversarial_probability = q[r.adversarial_class];
    std::vector<float> shown(pixels.size());
    for (std::size_t k = 0; k < pixels.size(); ++k)
        shown[k] = eps > 0 ? 0.5f + 0.5f * static_cast<float>((attacked[k] - pixels[k]) / eps) : 0.5f;
    const auto caption = [&](int64_t c, double probability) {
        return fmt::format("{}\n{:.1f}%", fit_text(names[c], 180), 100.0 * probability);
    };
    const std::vector<Tile> tiles = {
        {image_tile(pixels, input, 180), "original", caption(r.original_class, r.original_probability)},
        {image_tile(shown, input, 180), "sign of the gradient", fmt::format("eps {:.4g}\n= {:.1f}/255", eps, eps * 255)},
        {image_tile(attacked, input, 180), "perturbed", caption(r.adversarial_class, r.adversarial_probability)}};
    r.picture = tile_grid(tiles, 3, fmt::format("FGSM: {} -> {}", names[r.original_class], names[r.adversarial_class]));
    return r;
}

std::vector<float> load_input_image(const std::string& path, const eval::Preprocessing& preprocessing) {
    const data::Image image = preprocessing.apply(data::read_image(path));
    return eval::to_unit_pixels(image.pixels.data(), 1, static_cast<int64_t>(image.pixels.size()));
}

}  // namespace cudacnn::viz
