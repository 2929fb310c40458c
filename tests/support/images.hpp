// Writing small PNG files for tests (libpng's simplified API, independent of cudacnn's own decoder), e.g. the
// class folders of an image-folder dataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <png.h>

#include "cudacnn/error.hpp"

namespace cudacnn::test {

// An 8-bit RGB PNG of `rgb` (height × width × 3, interleaved, row-major).
inline void write_png(const std::string& path, int64_t width, int64_t height,
                      const std::vector<uint8_t>& rgb) {
    CUDACNN_CHECK(static_cast<int64_t>(rgb.size()) == width * height * 3, "write_png {}: {} bytes for {}x{}",
                  path, rgb.size(), width, height);
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    image.width = static_cast<png_uint_32>(width);
    image.height = static_cast<png_uint_32>(height);
    image.format = PNG_FORMAT_RGB;
    CUDACNN_CHECK(png_image_write_to_file(&image, path.c_str(), 0, rgb.data(), 0, nullptr) != 0,
                  "write_png {}: {}", path, image.message);
}

// A width × height PNG of one colour.
inline void write_solid_png(const std::string& path, int64_t width, int64_t height, uint8_t r, uint8_t g,
                            uint8_t b) {
    std::vector<uint8_t> rgb;
    for (int64_t i = 0; i < width * height; ++i) rgb.insert(rgb.end(), {r, g, b});
    write_png(path, width, height, rgb);
}

}  // namespace cudacnn::test
