// The 5×7 bitmap font of cudacnn's pictures (internal to src/viz; Canvas::text draws with it).
#pragma once

namespace cudacnn::viz {

constexpr int kGlyphWidth = 5, kGlyphHeight = 7;
constexpr int kCellWidth = 6, kCellHeight = 8;  // with one column and one row of spacing

// Whether cell (row, column) of character c's glyph is lit; characters outside printable ASCII draw as '?'.
bool glyph_lit(char c, int row, int column);

}  // namespace cudacnn::viz
