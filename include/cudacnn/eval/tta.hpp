// Test-time augmentation for cudacnn-eval: which views of an image are classified (its mirror image, the corner
// and centre windows of the zero-padded image as torchvision's Pad + TenCrop cut them) and how one view is made.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cudacnn::eval {

// --tta-views: flip = the image and its mirror image; crops = the five windows; all = the five windows, each as
// is and mirrored (TenCrop). none: the image alone (no TTA).
enum class TtaViews { none, flip, crops, all };

struct Tta {
    TtaViews views = TtaViews::none;
    int64_t padding = 4;  // --tta-padding: zeros on every side before the windows are cut (the seed's RandomCrop)
};

// The five windows of the image's size in the padded image, in five_crop's order.
enum class Window { top_left, top_right, bottom_left, bottom_right, centre };

struct TtaView {
    Window window;
    bool mirror;  // the window of the mirrored padded image, as TenCrop's second five

    bool operator==(const TtaView& o) const { return window == o.window && mirror == o.mirror; }
};

// The views of `views`, in the order their logits are summed: TenCrop's (the five windows, then the five
// windows of the mirrored image); flip: the image, then its mirror image; none: the image.
std::vector<TtaView> tta_views(TtaViews views);

// One view (C, H, W) of an image (C, H, W) of pixels on the [0, 1] scale: the image zero-padded by `padding` on
// every side (0 in pixel space, before Normalize, as RandomCrop's fill=0), mirrored when `mirror`, and the
// H × W window at `window`: its top-left corner at (0, 0), (0, 2P), (2P, 0), (2P, 2P) or (P, P), so the centre
// window is the image itself. Throws Error when the padding is negative or not below H and W (a corner
// window would hold no pixel of the image).
void tta_view(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t padding, Window window,
              bool mirror, float* out);
std::vector<float> tta_view(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t padding,
                            Window window, bool mirror);

// The padding check of tta_view, for an early complaint naming --tta-padding before any work.
void check_tta_padding(int64_t padding, int64_t height, int64_t width);

// "flip", "crops", "all" ("none" for none), and the report's sentence about the views ("" for none).
std::string tta_views_name(TtaViews views);
std::string describe_tta(const Tta& tta);

}  // namespace cudacnn::eval
