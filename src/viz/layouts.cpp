// The layouts of cudacnn's pictures: value maps, tile grids, heat maps and line plots (see canvas.hpp).
#include "cudacnn/viz/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn::viz {
namespace {

constexpr int64_t kPad = 6;

// Tick positions at 1, 2 or 5 times a power of ten, about `target` of them over [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target, bool whole = false) {
    const double raw = std::max((hi - lo) / std::max(target, 1), whole ? 1.0 : 0.0);
    const double power = std::pow(10.0, std::floor(std::log10(raw)));
    double step = power;
    for (const double m : {1.0, 2.0, 5.0, 10.0}) {
        step = m * power;
        if (step >= raw) break;
    }
    std::vector<double> ticks;
    for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
    return ticks;
}

std::string tick_text(double v) {
    if (std::abs(v) < 1e-12) return "0";
    return fmt::format("{:g}", v);
}

}  // namespace

Canvas value_map(const float* values, int64_t rows, int64_t columns, int scale, Rgb (*colour)(double)) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (int64_t k = 0; k < rows * columns; ++k)
        if (std::isfinite(values[k])) lo = std::min(lo, values[k]), hi = std::max(hi, values[k]);
    Canvas canvas(columns * scale, rows * scale);
    for (int64_t y = 0; y < rows; ++y)
        for (int64_t x = 0; x < columns; ++x) {
            const float v = values[y * columns + x];
            const double t = hi > lo ? (static_cast<double>(v) - lo) / (static_cast<double>(hi) - lo) : 0.5;
            canvas.fill(x * scale, y * scale, scale, scale, colour(t));
        }
    return canvas;
}

Canvas rgb_image(const float* planes, int64_t rows, int64_t columns, int scale) {
    Canvas canvas(columns * scale, rows * scale);
    const auto byte = [](float v) { return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f)); };
    const int64_t plane = rows * columns;
    for (int64_t y = 0; y < rows; ++y)
        for (int64_t x = 0; x < columns; ++x) {
            const int64_t k = y * columns + x;
            canvas.fill(x * scale, y * scale, scale, scale,
                        Rgb{byte(planes[k]), byte(planes[plane + k]), byte(planes[2 * plane + k])});
        }
    return canvas;
}

Canvas tile_grid(const std::vector<Tile>& tiles, int64_t columns, const std::string& title) {
    CUDACNN_CHECK(!tiles.empty() && columns > 0, "tile_grid: {} tiles in {} columns", tiles.size(), columns);
    int64_t cell_w = 0, picture_h = 0, title_h = 0, caption_h = 0;
    for (const Tile& t : tiles) {
        cell_w = std::max({cell_w, t.picture.width(), std::min<int64_t>(text_width(t.caption), 160)});
        picture_h = std::max(picture_h, t.picture.height());
        if (!t.title.empty()) title_h = text_height(t.title) + 2;
        if (!t.caption.empty()) caption_h = std::max(caption_h, text_height(t.caption) + 2);
    }
    const int64_t cell_h = title_h + picture_h + caption_h;
    const int64_t count = static_cast<int64_t>(tiles.size());
    columns = std::min(columns, count);
    const int64_t rows = (count + columns - 1) / columns;
    const int64_t header = title.empty() ? 0 : text_height(title, 2) + kPad;
    const int64_t width = std::max(columns * (cell_w + kPad) + kPad, text_width(title, 2) + 2 * kPad);
    Canvas canvas(width, header + rows * (cell_h + kPad) + kPad);
    canvas.text(kPad, kPad, title, kBlack, 2);
    for (int64_t i = 0; i < count; ++i) {
        const Tile& t = tiles[i];
        const int64_t x = kPad + (i % columns) * (cell_w + kPad), y = header + kPad + (i / columns) * (cell_h + kPad);
        canvas.text(x, y, fit_text(t.title, cell_w), kBlack);
        canvas.paste(t.picture, x, y + title_h);
        canvas.text(x, y + title_h + t.picture.height() + 2, t.caption, kBlack);  // right under its own picture
    }
    return canvas;
}

Canvas heat_map(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels,
                const std::string& title, const std::string& row_axis, const std::string& column_axis) {
    const auto n = static_cast<int64_t>(counts.size());
    CUDACNN_CHECK(n > 0 && static_cast<int64_t>(labels.size()) == n, "heat_map: {} rows and {} labels", n, labels.size());
    int64_t top = 0, widest_count = 1;
    for (const auto& row : counts)
        for (const int64_t v : row) top = std::max(top, v), widest_count = std::max(widest_count, text_width(std::to_string(v)));
    int64_t label_w = 0;
    for (const std::string& label : labels) label_w = std::max(label_w, text_width(label));
    const int64_t cell = std::max<int64_t>(widest_count + 8, 24);
    const int64_t title_h = text_height(title, 2) + 2 * kPad;
    const int64_t left = kPad + 10 + kPad + label_w + kPad;  // row axis name (vertical), labels
    const int64_t grid_top = title_h;
    const int64_t bottom_labels = label_w + kPad;  // column labels written vertically
    const int64_t width = std::max(left + n * cell + kPad, text_width(title, 2) + 2 * kPad);
    const int64_t height = grid_top + n * cell + kPad + bottom_labels + 10 + 2 * kPad;
    Canvas canvas(width, height);
    canvas.text(kPad, kPad, title, kBlack, 2);
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < n; ++c) {
            const int64_t v = counts[r][c];
            const double t = top > 0 ? static_cast<double>(v) / static_cast<double>(top) : 0.0;
            const Rgb fill = blues(t);
            canvas.fill(left + c * cell, grid_top + r * cell, cell, cell, fill);
            const std::string text = std::to_string(v);
            canvas.text(left + c * cell + (cell - text_width(text)) / 2, grid_top + r * cell + (cell - 7) / 2, text,
                        t > 0.5 ? kWhite : kBlack);
        }
        canvas.text(left - kPad - text_width(labels[r]), grid_top + r * cell + (cell - 7) / 2, labels[r], kBlack);
    }
    canvas.frame(left - 1, grid_top - 1, n * cell + 2, n * cell + 2, kGrey);
    const int64_t below = grid_top + n * cell + kPad;
    for (int64_t c = 0; c < n; ++c)
        canvas.text_vertical(left + c * cell + (cell - 7) / 2, below + text_width(labels[c]), labels[c], kBlack);
    canvas.text(left + (n * cell - text_width(column_axis)) / 2, below + bottom_labels + kPad, column_axis, kBlack);
    canvas.text_vertical(kPad, grid_top + (n * cell + text_width(row_axis)) / 2, row_axis, kBlack);
    return canvas;
}

Canvas line_plot(const std::vector<Series>& series, const Axes& axes, int64_t width, int64_t height) {
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
    for (const Series& s : series)
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
            y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
        }
    CUDACNN_CHECK(std::isfinite(x_lo), "line_plot '{}': no finite point to draw", axes.title);
    if (x_hi == x_lo) x_lo -= 1, x_hi += 1;
    if (y_hi == y_lo) y_lo -= std::max(1.0, std::abs(y_lo) * 0.1), y_hi += std::max(1.0, std::abs(y_hi) * 0.1);
    const double y_margin = 0.05 * (y_hi - y_lo);
    y_lo -= y_margin, y_hi += y_margin;
    const std::vector<double> x_ticks = nice_ticks(x_lo, x_hi, 8, axes.whole_x), y_ticks = nice_ticks(y_lo, y_hi, 6);
    int64_t y_tick_w = 0;
    for (const double t : y_ticks) y_tick_w = std::max(y_tick_w, text_width(tick_text(t)));
    const int64_t left = kPad + 10 + kPad + y_tick_w + kPad, right = width - kPad;
    const int64_t top = kPad + text_height(axes.title, 2) + kPad, bottom = height - (kPad + 10 + kPad + 10 + kPad);
    CUDACNN_CHECK(right - left > 20 && bottom - top > 20, "line_plot: {}x{} pixels leave no room for the plot", width, height);
    const auto px = [&](double x) { return left + std::lround((x - x_lo) / (x_hi - x_lo) * static_cast<double>(right - left)); };
    const auto py = [&](double y) { return bottom - std::lround((y - y_lo) / (y_hi - y_lo) * static_cast<double>(bottom - top)); };

    Canvas canvas(width, height);
    canvas.text(kPad, kPad, axes.title, kBlack, 2);
    for (const double t : y_ticks) {
        canvas.line(left, py(t), right, py(t), kLightGrey);
        canvas.line(left - 3, py(t), left, py(t), kBlack);
        canvas.text(left - kPad - text_width(tick_text(t)), py(t) - 3, tick_text(t), kBlack);
    }
    for (const double t : x_ticks) {
        canvas.line(px(t), top, px(t), bottom, kLightGrey);
        canvas.line(px(t), bottom, px(t), bottom + 3, kBlack);
        canvas.text(px(t) - text_width(tick_text(t)) / 2, bottom + kPad, tick_text(t), kBlack);
    }
    canvas.line(left, top, left, bottom, kBlack);
    canvas.line(left, bottom, right, bottom, kBlack);
    canvas.text(left + (right - left - text_width(axes.x_label)) / 2, height - kPad - 8, axes.x_label, kBlack);
    canvas.text_vertical(kPad, top + (bottom - top + text_width(axes.y_label)) / 2, axes.y_label, kBlack);
    for (const Series& s : series) {
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            canvas.fill(px(s.x[i]) - 2, py(s.y[i]) - 2, 5, 5, s.colour);
            if (i + 1 < s.x.size() && std::isfinite(s.x[i + 1]) && std::isfinite(s.y[i + 1]))
                for (int d = 0; d < 2; ++d)  // two pixels thick
                    canvas.line(px(s.x[i]), py(s.y[i]) + d, px(s.x[i + 1]), py(s.y[i + 1]) + d, s.colour);
        }
    }
    // The legend: a box in the top right corner of the plot area.
    int64_t legend_w = 0;
    for (const Series& s : series) legend_w = std::max(legend_w, text_width(s.name));
    legend_w += 3 * kPad + 14;
    const int64_t legend_h = static_cast<int64_t>(series.size()) * 12 + kPad;
    const int64_t lx = right - legend_w - kPad, ly = top + kPad;
    canvas.fill(lx, ly, legend_w, legend_h, kWhite);
    canvas.frame(lx, ly, legend_w, legend_h, kGrey);
    for (std::size_t i = 0; i < series.size(); ++i) {
        const int64_t y = ly + kPad + static_cast<int64_t>(i) * 12;
        canvas.fill(lx + kPad, y + 2, 14, 3, series[i].colour);
        canvas.text(lx + 2 * kPad + 14, y, series[i].name, kBlack);
    }
    return canvas;
}

Canvas beside(const std::vector<Canvas>& parts, int64_t gap) {
    int64_t width = gap, height = 0;
    for (const Canvas& p : parts) width += p.width() + gap, height = std::max(height, p.height());
    Canvas canvas(width, height + 2 * gap);
    int64_t x = gap;
    for (const Canvas& p : parts) canvas.paste(p, x, gap), x += p.width() + gap;
    return canvas;
}

Canvas stacked(const std::vector<Canvas>& parts, int64_t gap) {
    int64_t width = 0, height = gap;
    for (const Canvas& p : parts) height += p.height() + gap, width = std::max(width, p.width());
    Canvas canvas(width + 2 * gap, height);
    int64_t y = gap;
    for (const Canvas& p : parts) canvas.paste(p, gap, y), y += p.height() + gap;
    return canvas;
}

}  // namespace cudacnn::viz
