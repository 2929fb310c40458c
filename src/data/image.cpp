// PNG and JPEG files as RGB images, the PIL-style bilinear resize and the ImageFolder loader (see image.hpp).
#include "cudacnn/data/image.hpp"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <jpeglib.h>
#include <jerror.h>  // libjpeg's message codes (JWRN_JPEG_EOF)
#include <png.h>

#include "cudacnn/error.hpp"

namespace cudacnn::data {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    CUDACNN_CHECK(in.good(), "image {}: cannot open the file (missing or unreadable)", path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool is_png(const std::string& bytes) { return bytes.size() >= 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0; }
bool is_jpeg(const std::string& bytes) {
    return bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF && static_cast<uint8_t>(bytes[1]) == 0xD8 &&
           static_cast<uint8_t>(bytes[2]) == 0xFF;
}

// The most pixels a file may have (8192 × 8192): a header's size is checked before any pixel is allocated, so
// that a damaged header cannot ask for gigabytes.
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

bool too_large(int64_t height, int64_t width) { return height * width > kMaxImagePixels; }

[[noreturn]] void fail_too_large(const std::string& path, int64_t height, int64_t width) {
    CUDACNN_FAIL("image {}: {}x{} pixels is more than the {} (8192x8192) cudacnn reads; shrink the image (or its "
                 "header is damaged)",
                 path, width, height, kMaxImagePixels);
}

// Interleaved RGB rows → the planar layout of Image.
Image from_interleaved(const uint8_t* rgb, int64_t height, int64_t width) {
    Image image{height, width, std::vector<uint8_t>(static_cast<std::size_t>(3 * height * width))};
    for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x)
            for (int64_t c = 0; c < 3; ++c) image.pixels[(c * height + y) * width + x] = rgb[(y * width + x) * 3 + c];
    return image;
}

// libpng's simplified API reports errors in image.message instead of longjmp-ing through our frames.
Image decode_png(const std::string& bytes, const std::string& path) {
    png_image png{};
    png.version = PNG_IMAGE_VERSION;
    CUDACNN_CHECK(png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()) != 0,
                  "image {}: not a readable PNG ({})", path, png.message);
    if (too_large(png.height, png.width)) {
        png_image_free(&png);
        fail_too_large(path, png.height, png.width);
    }
    png.format = PNG_FORMAT_RGB;  // grey replicated, alpha dropped, 16 bits reduced, palette expanded
    std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(png));
    const bool ok = png_image_finish_read(&png, nullptr, rgb.data(), 0, nullptr) != 0;
    const std::string message = png.message;
    png_image_free(&png);
    CUDACNN_CHECK(ok, "image {}: damaged PNG ({})", path, message);
    return from_interleaved(rgb.data(), png.height, png.width);
}

// libjpeg's default error handler calls exit(): this one jumps back here with the message instead.
struct JpegErrors {
    jpeg_error_mgr manager;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    void (*libjpeg_emit_message)(j_common_ptr, int);  // jpeg_std_error's, for the warnings we keep
};

void jpeg_error_exit(j_common_ptr info) {
    auto* errors = reinterpret_cast<JpegErrors*>(info->err);
    (*info->err->format_message)(info, errors->message);
    std::longjmp(errors->jump, 1);
}

// A file that ends before its pixels do is an error (PIL's "image file is truncated"), not libjpeg's warning
// and grey fill: a few hundred bytes whose header claims 8192x8192 pixels would otherwise decode, resize and
// train on 67 million invented pixels (a fuzzer found it taking minutes). Other warnings keep libjpeg's handling.
void jpeg_emit_message(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(info);
    reinterpret_cast<JpegErrors*>(info->err)->libjpeg_emit_message(info, level);
}

// Only plain C objects live across setjmp, so the longjmp skips no destructor.
bool decode_jpeg_into(const std::string& bytes, std::vector<uint8_t>& rgb, int64_t& height, int64_t& width,
                      char* message) {
    jpeg_decompress_struct info{};
    JpegErrors errors{};
    info.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = jpeg_error_exit;
    errors.libjpeg_emit_message = errors.manager.emit_message;
    errors.manager.emit_message = jpeg_emit_message;
    if (setjmp(errors.jump) != 0) {
        std::copy(std::begin(errors.message), std::end(errors.message), message);
        jpeg_destroy_decompress(&info);
        return false;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
    jpeg_read_header(&info, TRUE);
    height = info.image_height;
    width = info.image_width;
    if (too_large(height, width)) {  // decode_jpeg says so
        jpeg_destroy_decompress(&info);
        return false;
    }
    info.out_color_space = JCS_RGB;  // grey and YCbCr alike
    jpeg_start_decompress(&info);
    height = info.output_height;
    width = info.output_width;
    rgb.resize(static_cast<std::size_t>(height * width * 3));
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = rgb.data() + static_cast<std::size_t>(info.output_scanline) * width * 3;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return true;
}

Image decode_jpeg(const std::string& bytes, const std::string& path) {
    std::vector<uint8_t> rgb;
    int64_t height = 0, width = 0;
    char message[JMSG_LENGTH_MAX] = {};
    const bool decoded = decode_jpeg_into(bytes, rgb, height, width, message);
    if (too_large(height, width)) fail_too_large(path, height, width);
    CUDACNN_CHECK(decoded, "image {}: damaged JPEG ({})", path, message);
    return from_interleaved(rgb.data(), height, width);
}

// One axis of PIL's resample: for every output position the source range and normalized triangle weights.
struct Taps {
    std::vector<int64_t> first;
    std::vector<std::vector<double>> weights;
};

Taps resample_taps(int64_t in, int64_t out) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    const double filter_scale = std::max(scale, 1.0);
    const double support = filter_scale;  // the triangle's support is 1, widened when shrinking
    Taps taps;
    for (int64_t i = 0; i < out; ++i) {
        const double center = (static_cast<double>(i) + 0.5) * scale;
        const auto lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
        const auto hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
        std::vector<double> w;
        double total = 0.0;
        for (int64_t x = lo; x < hi; ++x) {
            const double t = std::abs((static_cast<double>(x) - center + 0.5) / filter_scale);
            w.push_back(t < 1.0 ? 1.0 - t : 0.0);
            total += w.back();
        }
        for (double& v : w) v = total > 0 ? v / total : 0.0;
        taps.first.push_back(lo);
        taps.weights.push_back(std::move(w));
    }
    return taps;
}

uint8_t to_byte(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

bool is_image_file(const fs::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool folders) {
    std::vector<fs::path> entries;
    std::error_code error;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        if (folders ? it->is_directory() : (it->is_regular_file() && is_image_file(it->path())))
            entries.push_back(it->path());
    }
    CUDACNN_CHECK(!error, "image folder {}: cannot list it ({})", dir.string(), error.message());
    std::sort(entries.begin(), entries.end());
    return entries;
}

}  // namespace

Image read_image(const std::string& path) {
    const std::string bytes = read_file(path);
    Image image;
    if (is_png(bytes)) {
        image = decode_png(bytes, path);
    } else if (is_jpeg(bytes)) {
        image = decode_jpeg(bytes, path);
    } else {
        CUDACNN_FAIL("image {}: neither PNG nor JPEG (its first bytes say neither); convert it to one of them", path);
    }
    CUDACNN_CHECK(image.height > 0 && image.width > 0, "image {}: has no pixels", path);
    return image;
}

Image resize_image(const Image& image, int64_t height, int64_t width) {
    CUDACNN_CHECK(height > 0 && width > 0, "resize_image: target size {}x{} must be positive", height, width);
    if (image.height == height && image.width == width) return image;
    // Horizontal pass, then vertical, each rounded to 8 bits as PIL's are.
    const Taps across = resample_taps(image.width, width);
    const Taps down = resample_taps(image.height, height);
    Image wide{image.height, width, std::vector<uint8_t>(static_cast<std::size_t>(3 * image.height * width))};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < image.height; ++y)
            for (int64_t x = 0; x < width; ++x) {
                double sum = 0.0;
                for (std::size_t k = 0; k < across.weights[x].size(); ++k)
                    sum += across.weights[x][k] * image.at(c, y, across.first[x] + static_cast<int64_t>(k));
                wide.pixels[(c * image.height + y) * width + x] = to_byte(sum);
            }
    Image out{height, width, std::vector<uint8_t>(static_cast<std::size_t>(3 * height * width))};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < height; ++y)
            for (int64_t x = 0; x < width; ++x) {
                double sum = 0.0;
                for (std::size_t k = 0; k < down.weights[y].size(); ++k)
                    sum += down.weights[y][k] * wide.at(c, down.first[y] + static_cast<int64_t>(k), x);
                out.pixels[(c * height + y) * width + x] = to_byte(sum);
            }
    return out;
}

namespace {
// The (height, width) window of `image` whose top-left pixel is (top, left); the caller keeps it inside.
Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width) {
    Image window{height, width, std::vector<uint8_t>(static_cast<std::size_t>(3 * height * width))};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < height; ++y)
            for (int64_t x = 0; x < width; ++x) window.pixels[(c * height + y) * width + x] = image.at(c, top + y, left + x);
    return window;
}
}  // namespace

Image fit_image(const Image& image, int64_t height, int64_t width) {
    CUDACNN_CHECK(height > 0 && width > 0, "fit_image: target size {}x{} must be positive", height, width);
    if (image.height == height && image.width == width) return image;
    // The window: full height or full width, whichever keeps height : width.
    int64_t crop_h = image.height, crop_w = image.height * width / height;
    if (crop_w > image.width) crop_w = image.width, crop_h = std::max<int64_t>(1, image.width * height / width);
    crop_w = std::max<int64_t>(crop_w, 1);
    const int64_t top = (image.height - crop_h) / 2, left = (image.width - crop_w) / 2;
    return resize_image(crop(image, top, left, crop_h, crop_w), height, width);
}

Image resize_shorter_side(const Image& image, int64_t size) {
    CUDACNN_CHECK(size > 0, "resize_shorter_side: size {} must be positive", size);
    const bool portrait = image.width <= image.height;
    const int64_t shorter = portrait ? image.width : image.height, longer = portrait ? image.height : image.width;
    // Python's int(size * long / short): an exact product, one correctly rounded division, then truncation.
    const auto new_longer =
        static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
    return portrait ? resize_image(image, new_longer, size) : resize_image(image, size, new_longer);
}

namespace {
// Python's int(round(v / 2.0)) for v >= 0: round() takes halves to the even neighbour.
int64_t python_round_half(int64_t v) {
    const int64_t floor = v / 2;
    return v % 2 == 0 || floor % 2 == 0 ? floor : floor + 1;
}
}  // namespace

Image center_crop(const Image& image, int64_t height, int64_t width) {
    CUDACNN_CHECK(height > 0 && width > 0 && height <= image.height && width <= image.width,
                  "center_crop: a {}x{} window does not fit in a {}x{} image; resize the image first", height, width,
                  image.height, image.width);
    return crop(image, python_round_half(image.height - height), python_round_half(image.width - width), height,
                width);
}

Dataset load_image_folder(const std::string& dir, int64_t height, int64_t width, const ImageFit& fit) {
    std::error_code error;
    CUDACNN_CHECK(fs::is_directory(dir, error), "image folder {}: not a folder; give DIR with one subfolder of "
                  "images per class (DIR/<class>/<image>.jpg)", dir);
    fs::path root = dir;
    if (fs::is_directory(root / "test", error) && !sorted_entries(root / "test", true).empty()) root /= "test";
    const std::vector<fs::path> classes = sorted_entries(root, true);
    CUDACNN_CHECK(!classes.empty(), "image folder {}: no class subfolders; give DIR with one subfolder of images per "
                  "class (DIR/<class>/<image>.jpg)", root.string());
    Dataset out;
    out.name = root.string();
    out.height = height;
    out.width = width;
    out.num_classes = static_cast<int64_t>(classes.size());
    for (std::size_t label = 0; label < classes.size(); ++label) {
        out.class_names.push_back(classes[label].filename().string());
        const std::vector<fs::path> files = sorted_entries(classes[label], false);
        CUDACNN_CHECK(!files.empty(), "image folder {}: class folder '{}' holds no .png/.jpg/.jpeg file", root.string(),
                      classes[label].filename().string());
        for (const fs::path& file : files) {
            const Image image = fit ? fit(read_image(file.string())) : fit_image(read_image(file.string()), height, width);
            CUDACNN_CHECK(image.height == height && image.width == width, "image folder {}: {} became {}x{}, not {}x{}",
                          root.string(), file.string(), image.height, image.width, height, width);
            out.images.insert(out.images.end(), image.pixels.begin(), image.pixels.end());
            out.labels.push_back(static_cast<int64_t>(label));
        }
    }
    out.validate();
    return out;
}

Splits load_image_folder_splits(const std::string& dir, int64_t height, int64_t width) {
    std::error_code error;
    const fs::path root = dir;
    const bool has_train = fs::is_directory(root / "train", error),
               has_test = fs::is_directory(root / "test", error);
    if (has_train != has_test)
        CUDACNN_FAIL(
            "image folder {}: has {}/ but no {}/; give both train/ and test/ (each with one subfolder of "
            "images per class), or neither (then {} itself holds the class folders and is used for both)",
            dir, has_train ? "train" : "test", has_train ? "test" : "train", dir);
    if (!has_train) {
        Splits splits{load_image_folder(dir, height, width), {}};
        splits.test = splits.train;
        splits.test.name = fmt::format("{} (the training images again: no test/ folder)", splits.train.name);
        return splits;
    }
    Splits splits{load_image_folder((root / "train").string(), height, width),
                  load_image_folder((root / "test").string(), height, width)};
    // A label is the rank of its folder's name, so the two sets mean the same by a label only with the same
    // names.
    CUDACNN_CHECK(
        splits.train.class_names == splits.test.class_names,
        "image folder {}: train/ has the classes [{}] but test/ has [{}]; give both the same class folders",
        dir, fmt::join(splits.train.class_names, ", "), fmt::join(splits.test.class_names, ", "));
    return splits;
}

}  // namespace cudacnn::data
