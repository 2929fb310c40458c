// The RGB canvas, its text, colour maps and PNG output (see canvas.hpp).
#include "cudacnn/viz/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <png.h>

#include "cudacnn/error.hpp"
#include "src/viz/font.hpp"

namespace cudacnn::viz {
namespace {

// Piecewise-linear colour map through evenly spaced stops.
Rgb through(const std::vector<Rgb>& stops, double t) {
    if (std::isnan(t)) return Rgb{255, 0, 255};
    t = std::clamp(t, 0.0, 1.0) * static_cast<double>(stops.size() - 1);
    const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), stops.size() - 2);
    const double f = t - static_cast<double>(i);
    const auto mix = [&](uint8_t a, uint8_t b) { return static_cast<uint8_t>(std::lround(a + f * (b - a))); };
    return Rgb{mix(stops[i].r, stops[i + 1].r), mix(stops[i].g, stops[i + 1].g), mix(stops[i].b, stops[i + 1].b)};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines(1);
    for (const char c : text) {
        if (c == '\n') {
            lines.emplace_back();
        } else {
            lines.back() += c;
        }
    }
    return lines;
}

}  // namespace

Canvas::Canvas(int64_t width, int64_t height, Rgb background) : width_(width), height_(height) {
    CUDACNN_CHECK(width > 0 && height > 0 && width * height <= (int64_t{1} << 28),
                  "canvas: size {}x{} must be positive and at most 2^28 pixels", width, height);
    pixels_.resize(static_cast<std::size_t>(3 * width * height));
    for (std::size_t k = 0; k < pixels_.size(); k += 3) {
        pixels_[k] = background.r;
        pixels_[k + 1] = background.g;
        pixels_[k + 2] = background.b;
    }
}

Rgb Canvas::at(int64_t x, int64_t y) const {
    const std::size_t k = static_cast<std::size_t>(3 * (y * width_ + x));
    return Rgb{pixels_[k], pixels_[k + 1], pixels_[k + 2]};
}

void Canvas::set(int64_t x, int64_t y, Rgb colour) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    const std::size_t k = static_cast<std::size_t>(3 * (y * width_ + x));
    pixels_[k] = colour.r;
    pixels_[k + 1] = colour.g;
    pixels_[k + 2] = colour.b;
}

void Canvas::fill(int64_t x, int64_t y, int64_t w, int64_t h, Rgb colour) {
    for (int64_t j = std::max<int64_t>(y, 0); j < std::min(y + h, height_); ++j)
        for (int64_t i = std::max<int64_t>(x, 0); i < std::min(x + w, width_); ++i) set(i, j, colour);
}

void Canvas::frame(int64_t x, int64_t y, int64_t w, int64_t h, Rgb colour) {
    fill(x, y, w, 1, colour);
    fill(x, y + h - 1, w, 1, colour);
    fill(x, y, 1, h, colour);
    fill(x + w - 1, y, 1, h, colour);
}

void Canvas::line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb colour) {
    // Bresenham: every step moves one pixel along the longer axis.
    const int64_t dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int64_t error = dx + dy;
    while (true) {
        set(x0, y0, colour);
        if (x0 == x1 && y0 == y1) return;
        const int64_t twice = 2 * error;
        if (twice >= dy) error += dy, x0 += sx;
        if (twice <= dx) error += dx, y0 += sy;
    }
}

void Canvas::text(int64_t x, int64_t y, const std::string& text, Rgb colour, int scale) {
    int64_t top = y;
    for (const std::string& line : lines_of(text)) {
        for (std::size_t i = 0; i < line.size(); ++i) {
            const int64_t left = x + static_cast<int64_t>(i) * kCellWidth * scale;
            for (int row = 0; row < kGlyphHeight; ++row)
                for (int column = 0; column < kGlyphWidth; ++column)
                    if (glyph_lit(line[i], row, column)) fill(left + column * scale, top + row * scale, scale, scale, colour);
        }
        top += kCellHeight * scale;
    }
}

void Canvas::text_vertical(int64_t x, int64_t y, const std::string& text, Rgb colour, int scale) {
    // Rotated a quarter turn anticlockwise: glyph column c goes up from y, glyph row r to the right of x.
    for (std::size_t i = 0; i < text.size(); ++i) {
        const int64_t bottom = y - static_cast<int64_t>(i) * kCellWidth * scale;
        for (int row = 0; row < kGlyphHeight; ++row)
            for (int column = 0; column < kGlyphWidth; ++column)
                if (glyph_lit(text[i], row, column))
                    fill(x + row * scale, bottom - (column + 1) * scale, scale, scale, colour);
    }
}

void Canvas::paste(const Canvas& source, int64_t x, int64_t y) {
    for (int64_t j = 0; j < source.height(); ++j)
        for (int64_t i = 0; i < source.width(); ++i) set(x + i, y + j, source.at(i, j));
}

int64_t text_width(const std::string& text, int scale) {
    std::size_t longest = 0;
    for (const std::string& line : lines_of(text)) longest = std::max(longest, line.size());
    return longest == 0 ? 0 : (static_cast<int64_t>(longest) * kCellWidth - 1) * scale;
}

int64_t text_height(const std::string& text, int scale) {
    return static_cast<int64_t>(lines_of(text).size()) * kCellHeight * scale;
}

std::string fit_text(const std::string& text, int64_t max_width, int scale) {
    if (text_width(text, scale) <= max_width) return text;
    const int64_t cells = std::max<int64_t>(0, (max_width / scale + 1) / kCellWidth);
    if (cells <= 3) return text.substr(0, static_cast<std::size_t>(cells));
    return text.substr(0, static_cast<std::size_t>(cells - 3)) + "...";
}

Rgb viridis(double t) {
    // matplotlib's viridis at 0, 1/4, 1/2, 3/4 and 1.
    static const std::vector<Rgb> stops = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    return through(stops, t);
}

Rgb grey(double t) { return through({kBlack, kWhite}, t); }

Rgb blues(double t) {
    static const std::vector<Rgb> stops = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    return through(stops, t);
}

// libpng's simplified API: errors come back in image.message rather than through longjmp.
void write_png(const Canvas& canvas, const std::string& path) {
    png_image png{};
    png.version = PNG_IMAGE_VERSION;
    png.width = static_cast<png_uint_32>(canvas.width());
    png.height = static_cast<png_uint_32>(canvas.height());
    png.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    CUDACNN_CHECK(png_image_write_get_memory_size(png, size, 0, canvas.pixels().data(), 0, nullptr) != 0,
                  "PNG {}: cannot encode the picture ({})", path, png.message);
    std::vector<char> bytes(size);
    CUDACNN_CHECK(png_image_write_to_memory(&png, bytes.data(), &size, 0, canvas.pixels().data(), 0, nullptr) != 0,
                  "PNG {}: cannot encode the picture ({})", path, png.message);
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    CUDACNN_CHECK(file.good(), "PNG {}: cannot create the file; check that its folder exists and is writable", path);
    file.write(bytes.data(), static_cast<std::streamsize>(size));
    file.close();
    CUDACNN_CHECK(file.good(), "PNG {}: writing failed (disk full?)", path);
}

}  // namespace cudacnn::viz
