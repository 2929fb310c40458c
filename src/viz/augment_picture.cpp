// cudacnn-viz augment: a grid of samples, each beside augmented versions of itself drawn by the CPU reference
// (data::augment_image) with the Philox rule of training, so a person can see what a spec does.
#include <algorithm>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/viz/commands.hpp"

namespace cudacnn::viz {
namespace {

constexpr int kTitleScale = 2;  // tile_grid draws its title at this scale

bool has_normalize(const data::AugmentSpec& spec) {
    return std::any_of(spec.begin(), spec.end(),
                       [](const data::AugmentOp& op) { return op.kind == data::AugmentKind::normalize; });
}

// A (C, H, W) image with C = 1 (drawn grey) or 3, values clamped to [0, 1] by rgb_image.
Canvas image_canvas(const data::FloatImage& image, int scale) {
    CUDACNN_CHECK(image.channels == 1 || image.channels == 3,
                  "augment picture: an image with {} channels; only 1 (grey) or 3 (RGB) can be drawn", image.channels);
    if (image.channels == 3) return rgb_image(image.values.data(), image.height, image.width, scale);
    std::vector<float> planes;
    for (int c = 0; c < 3; ++c) planes.insert(planes.end(), image.values.begin(), image.values.end());
    return rgb_image(planes.data(), image.height, image.width, scale);
}

// The text in lines no wider than max_width at the title's scale, broken after commas (a spec's ops stay whole
// unless one alone is wider).
std::string wrap_at_commas(const std::string& text, int64_t max_width) {
    std::string wrapped, line, piece;
    const auto flush_piece = [&] {
        if (!line.empty() && text_width(line + piece, kTitleScale) > max_width) wrapped += line + "\n", line.clear();
        line += piece;
        piece.clear();
    };
    for (const char c : text) {
        piece += c;
        if (c == ',') flush_piece();
    }
    flush_piece();
    return wrapped + line;
}

// The file's name with its folder's ("cat/0001.jpg"): in the ImageFolder layout the folder is the class.
std::string short_name(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return path;
    const std::size_t before = path.find_last_of('/', slash - 1);
    return path.substr(before == std::string::npos ? 0 : before + 1);
}

}  // namespace

data::AugmentSpec display_spec(const data::AugmentSpec& spec) {
    data::AugmentSpec shown = spec;
    for (data::AugmentOp& op : shown)
        if (op.kind == data::AugmentKind::normalize) op.norm_mean = {0, 0, 0}, op.norm_std = {1, 1, 1};
    return shown;
}

std::vector<AugmentSample> augment_samples(const data::Dataset& dataset, int64_t count) {
    std::vector<AugmentSample> samples;
    for (int64_t i = 0; i < std::min(count, dataset.size()); ++i) {
        const std::string& name = dataset.class_names.at(static_cast<std::size_t>(dataset.labels[i]));
        samples.push_back({name, data::to_float_image(dataset.image(i), dataset.channels, dataset.height, dataset.width)});
    }
    return samples;
}

std::vector<AugmentSample> augment_samples(const std::vector<std::string>& paths, int64_t size) {
    std::vector<AugmentSample> samples;
    for (const std::string& path : paths) {
        const data::Image image = data::fit_image(data::read_image(path), size, size);
        samples.push_back({short_name(path), data::to_float_image(image.pixels.data(), 3, image.height, image.width)});
    }
    return samples;
}

Canvas augment_picture(const std::vector<AugmentSample>& samples, const data::AugmentSpec& spec, int64_t columns,
                       uint64_t seed, int scale, const std::string& title) {
    CUDACNN_CHECK(!samples.empty(), "augment picture: no samples to show");
    CUDACNN_CHECK(columns >= 1, "augment picture: {} augmented versions per row; at least 1 is needed", columns);
    const data::AugmentSpec shown = display_spec(spec);
    std::vector<Tile> tiles;
    for (std::size_t row = 0; row < samples.size(); ++row) {
        const Canvas original = image_canvas(samples[row].image, scale);
        tiles.push_back({original, "", "original\n" + fit_text(samples[row].name, original.width())});
        for (int64_t epoch = 0; epoch < columns; ++epoch) {
            const auto position = static_cast<int64_t>(row);
            const data::FloatImage augmented = data::augment_image(shown, samples[row].image, seed, epoch, position);
            tiles.push_back({image_canvas(augmented, scale), "", fmt::format("epoch {}", epoch)});
        }
    }
    int64_t tile_width = 0;
    for (const Tile& t : tiles) tile_width = std::max(tile_width, t.picture.width());
    // Wrapped to about the grid's width, so that a long spec does not widen the picture.
    const int64_t grid_width = (columns + 1) * (tile_width + 6);
    std::string heading = wrap_at_commas(title, std::max<int64_t>(grid_width, 40 * 6 * kTitleScale));
    if (has_normalize(spec)) heading += "\n(normalize skipped for display)";
    return tile_grid(tiles, columns + 1, heading);
}

}  // namespace cudacnn::viz
