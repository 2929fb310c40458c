// Test-time augmentation views: flips and the five windows of the zero-padded image (see tta.hpp).
#include "cudacnn/eval/tta.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn::eval {
namespace {

constexpr Window kWindows[] = {Window::top_left, Window::top_right, Window::bottom_left, Window::bottom_right,
                               Window::centre};

}  // namespace

std::vector<TtaView> tta_views(TtaViews views) {
    switch (views) {
        case TtaViews::none: return {{Window::centre, false}};
        case TtaViews::flip: return {{Window::centre, false}, {Window::centre, true}};
        case TtaViews::crops:
        case TtaViews::all: break;
    }
    std::vector<TtaView> list;
    for (const Window window : kWindows) list.push_back({window, false});
    if (views == TtaViews::all)
        for (const Window window : kWindows) list.push_back({window, true});
    return list;
}

void check_tta_padding(int64_t padding, int64_t height, int64_t width) {
    CUDACNN_CHECK(padding >= 0 && padding < height && padding < width,
                  "--tta-padding {}: the corner windows of a {}x{} image padded by {} would hold no pixel of the image; "
                  "use 0 to {}", padding, width, height, padding, std::min(height, width) - 1);
}

void tta_view(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t padding, Window window,
              bool mirror, float* out) {
    check_tta_padding(padding, height, width);
    // The window's top-left corner in the (mirrored) padded image, (H + 2P) x (W + 2P); five_crop's centre
    // is at round((H + 2P − H) / 2) = P.
    const bool bottom = window == Window::bottom_left || window == Window::bottom_right;
    const bool right = window == Window::top_right || window == Window::bottom_right;
    const int64_t top = window == Window::centre ? padding : bottom ? 2 * padding : 0;
    const int64_t left = window == Window::centre ? padding : right ? 2 * padding : 0;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t y = 0; y < height; ++y) {
            const int64_t sy = top + y - padding;
            for (int64_t x = 0; x < width; ++x) {
                // Column left + x of the mirrored padded image is column W + 2P − 1 − (left + x) of the padded one.
                const int64_t sx = mirror ? width - 1 + padding - left - x : left + x - padding;
                const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
                out[(c * height + y) * width + x] = inside ? pixels[(c * height + sy) * width + sx] : 0.0f;
            }
        }
}

std::vector<float> tta_view(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t padding,
                            Window window, bool mirror) {
    std::vector<float> out(static_cast<std::size_t>(channels * height * width));
    tta_view(pixels, channels, height, width, padding, window, mirror, out.data());
    return out;
}

std::string tta_views_name(TtaViews views) {
    switch (views) {
        case TtaViews::none: return "none";
        case TtaViews::flip: return "flip";
        case TtaViews::crops: return "crops";
        case TtaViews::all: return "all";
    }
    return "?";
}

std::string describe_tta(const Tta& tta) {
    const std::string windows = fmt::format(
        "the four corner windows and the centre window (the image itself) of the image zero-padded by {} pixels",
        tta.padding);
    switch (tta.views) {
        case TtaViews::none: return "";
        case TtaViews::flip:
            return "test-time augmentation (flip): the mean of the logits of each image and of its mirror image";
        case TtaViews::crops:
            return "test-time augmentation (crops): the mean of the logits of 5 views of each image: " + windows;
        case TtaViews::all:
            return "test-time augmentation (all): the mean of the logits of 10 views of each image: " + windows +
                   ", each as is and mirrored (TenCrop)";
    }
    return "";
}

}  // namespace cudacnn::eval
