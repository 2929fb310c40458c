// Single images from PNG and JPEG files (for prediction and pictures), the resize that fits them to a
// model's input, and the ImageFolder layout (DIR/<class>/<file>) as a Dataset.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cudacnn/data/dataset.hpp"

namespace cudacnn::data {

// An 8-bit RGB image, channel-planar as Dataset records are: (3, height, width).
struct Image {
    int64_t height = 0, width = 0;
    std::vector<uint8_t> pixels;  // 3 · height · width: all R, then all G, then all B, row-major

    uint8_t at(int64_t channel, int64_t y, int64_t x) const { return pixels[(channel * height + y) * width + x]; }
};

// PNG (any bit depth, palette, grey or alpha) or JPEG (baseline or progressive, grey or colour), told apart by
// their first bytes, never by the extension. Grey becomes R = G = B; alpha is dropped, as PIL's
// convert("RGB") does; 16-bit PNG channels keep their high byte. Errors name the file and the problem.
Image read_image(const std::string& path);

// The resize of prediction and pictures (PIL's Image.resize with BILINEAR, which torchvision's Resize uses):
// separable triangle filters, widened by the scale factor when shrinking so that every source pixel counts
// (no aliasing); each pass rounds to 8 bits. Results may differ from PIL's by 1 (PIL uses fixed point).
Image resize_image(const Image& image, int64_t height, int64_t width);

// The largest centred window with the aspect ratio height : width, then resize_image to that size: a photo
// of any size and shape becomes a model input without being stretched (torchvision's Resize + CenterCrop,
// up to rounding). An image of that size already is returned unchanged.
Image fit_image(const Image& image, int64_t height, int64_t width);

// torchvision's Resize(size) with one int (weights.transforms() of the pretrained ImageNet models): the shorter
// side becomes `size`, the longer one int(size · long / short) (truncated, as torchvision 0.14 computes it), then
// resize_image. An image whose shorter side already is `size` is returned unchanged, as torchvision does.
Image resize_shorter_side(const Image& image, int64_t size);

// torchvision's CenterCrop((height, width)) of an image at least that large: the window's top is
// int(round((H − height) / 2.0)) with Python's round (halves to even: 16.5 → 16, 17.5 → 18), its left likewise.
// Error for an image smaller than the window (torchvision would pad it; resize it first).
Image center_crop(const Image& image, int64_t height, int64_t width);

// How a file's image becomes a record of height × width; empty: fit_image.
using ImageFit = std::function<Image(const Image&)>;

// torchvision's ImageFolder layout: every subfolder of `dir` (sorted by name) is a class, label = its rank;
// its PNG and JPEG files (sorted) are the records, each fitted (`fit`, else fit_image) to height × width. When `dir` has a
// "test" subfolder holding folders (the layout of train/ and test/ splits), that is used. Errors name the
// folder or file; an empty class folder or no class folder at all is an Error.
Dataset load_image_folder(const std::string& dir, int64_t height, int64_t width, const ImageFit& fit = {});

// The same layout as training and test sets (cudacnn-train's --dataset imagefolder). When `dir` has both
// train/ and test/, those are the sets, and their class folders must have the same names. Otherwise `dir`
// itself is the training set, and the test set is those same images (named so: with no held-out images, the
// test accuracy is the training images' accuracy without augmentation). Only one of train/ and test/ is an
// Error, since the other would be taken for a class.
Splits load_image_folder_splits(const std::string& dir, int64_t height, int64_t width);

}  // namespace cudacnn::data
