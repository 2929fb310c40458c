// Pictures for cudacnn-eval and cudacnn-viz: an RGB canvas with rectangles, lines and bitmap-font text, colour
// maps, PNG output (libpng), and the layouts the programs draw (a grid of titled tiles, a heat map with
// labelled axes, a line plot with axes, ticks and a legend).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cudacnn::viz {

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrey{128, 128, 128}, kLightGrey{220, 220, 220};

class Canvas {
  public:
    Canvas() = default;
    Canvas(int64_t width, int64_t height, Rgb background = kWhite);

    int64_t width() const { return width_; }
    int64_t height() const { return height_; }
    const std::vector<uint8_t>& pixels() const { return pixels_; }  // interleaved RGB rows
    Rgb at(int64_t x, int64_t y) const;

    // Drawing clips to the canvas: what falls outside is dropped.
    void set(int64_t x, int64_t y, Rgb colour);
    void fill(int64_t x, int64_t y, int64_t w, int64_t h, Rgb colour);
    void frame(int64_t x, int64_t y, int64_t w, int64_t h, Rgb colour);  // a one-pixel outline
    void line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb colour);
    // Text with its top-left corner at (x, y), each font cell scale × scale pixels; '\n' starts a new line.
    void text(int64_t x, int64_t y, const std::string& text, Rgb colour, int scale = 1);
    void text_vertical(int64_t x, int64_t y, const std::string& text, Rgb colour, int scale = 1);  // upwards from (x, y)
    void paste(const Canvas& source, int64_t x, int64_t y);

  private:
    int64_t width_ = 0, height_ = 0;
    std::vector<uint8_t> pixels_;
};

int64_t text_width(const std::string& text, int scale = 1);   // of the longest line
int64_t text_height(const std::string& text, int scale = 1);  // of all lines
// `text` cut to at most max_width pixels, with "..." at the end when cut.
std::string fit_text(const std::string& text, int64_t max_width, int scale = 1);

// Colour maps over t in [0, 1] (clamped; NaN is drawn magenta so that it shows).
Rgb viridis(double t);
Rgb grey(double t);
Rgb blues(double t);  // white to dark blue, as matplotlib's "Blues"

// Writes the canvas as an 8-bit RGB PNG (libpng); Errors name the path (folder missing, disk full, ...).
void write_png(const Canvas& canvas, const std::string& path);

// ---- layouts ----

// A 2-D map of values (rows × columns, row-major) scaled by `scale` per value, each value coloured by
// colour((v − lo) / (hi − lo)) with lo and hi the map's own minimum and maximum (a constant map is mid-range).
Canvas value_map(const float* values, int64_t rows, int64_t columns, int scale, Rgb (*colour)(double));
// An RGB image, channel-planar (3, rows, columns) with values in [0, 1], each pixel scale × scale.
Canvas rgb_image(const float* planes, int64_t rows, int64_t columns, int scale);

struct Tile {
    Canvas picture;
    std::string title;  // above the picture (cut to the tile's width); may be empty
    std::string caption;  // below the picture; may hold '\n'
};
// Tiles in a grid of `columns` columns under a title, each cell as wide as the widest tile.
Canvas tile_grid(const std::vector<Tile>& tiles, int64_t columns, const std::string& title);

// A heat map of counts[row][column] (e.g. a confusion matrix: true class by predicted class), each cell
// showing its count, rows and columns labelled with `labels`, axis names and a title.
Canvas heat_map(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels,
                const std::string& title, const std::string& row_axis, const std::string& column_axis);

struct Series {
    std::string name;
    std::vector<double> x, y;
    Rgb colour;
};
struct Axes {
    std::string title, x_label, y_label;
    bool whole_x = false;  // x ticks at whole numbers only (epochs)
};
// A line plot of the series with markers, axes with "nice" ticks and their numbers, and a legend.
Canvas line_plot(const std::vector<Series>& series, const Axes& axes, int64_t width, int64_t height);

// Canvases side by side (top-aligned) with `gap` pixels between them, on white.
Canvas beside(const std::vector<Canvas>& parts, int64_t gap);
// Canvases one below the other (left-aligned).
Canvas stacked(const std::vector<Canvas>& parts, int64_t gap);

}  // namespace cudacnn::viz
