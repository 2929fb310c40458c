// Test-time augmentation: every view of a tiny image against views written out by hand (which pixels are
// the padding's zeros included), the views' order and the padding limits, and the session's TTA logits
// against the mean of the logits of the views run one by one.
#include <catch2/catch.hpp>

#include <random>

#include "cudacnn/eval/session.hpp"
#include "cudacnn/eval/tta.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using eval::TtaViews;
using eval::Window;

namespace {

std::vector<float> view_of(const std::vector<float>& image, int64_t channels, int64_t padding, Window window,
                           bool mirror) {
    return eval::tta_view(image.data(), channels, 3, 4, padding, window, mirror);
}

}  // namespace

TEST_CASE("tta_view: the five windows of a 3x4 image padded by 1, as is and mirrored, written out by hand", "[eval]") {
    const std::vector<float> image = {1, 2, 3, 4,  //
                                      5, 6, 7, 8,  //
                                      9, 10, 11, 12};
    // The padded image (5 x 6) and its mirror image:
    //   0 0  0  0  0 0      0  0  0  0 0 0
    //   0 1  2  3  4 0      0  4  3  2 1 0
    //   0 5  6  7  8 0      0  8  7  6 5 0
    //   0 9 10 11 12 0      0 12 11 10 9 0
    //   0 0  0  0  0 0      0  0  0  0 0 0
    // and the 3 x 4 windows at (0, 0), (0, 2), (2, 0), (2, 2) and (1, 1) of each.
    const std::vector<std::pair<Window, std::vector<float>>> plain = {
        {Window::top_left, {0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7}},
        {Window::top_right, {0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0}},
        {Window::bottom_left, {0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0}},
        {Window::bottom_right, {6, 7, 8, 0, 10, 11, 12, 0, 0, 0, 0, 0}},
        {Window::centre, image},
    };
    const std::vector<std::pair<Window, std::vector<float>>> mirrored = {
        {Window::top_left, {0, 0, 0, 0, 0, 4, 3, 2, 0, 8, 7, 6}},
        {Window::top_right, {0, 0, 0, 0, 3, 2, 1, 0, 7, 6, 5, 0}},
        {Window::bottom_left, {0, 8, 7, 6, 0, 12, 11, 10, 0, 0, 0, 0}},
        {Window::bottom_right, {7, 6, 5, 0, 11, 10, 9, 0, 0, 0, 0, 0}},
        {Window::centre, {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}},
    };
    for (const auto& [window, expected] : plain) {
        INFO("window " << static_cast<int>(window));
        CHECK(view_of(image, 1, 1, window, false) == expected);
    }
    for (const auto& [window, expected] : mirrored) {
        INFO("mirrored window " << static_cast<int>(window));
        CHECK(view_of(image, 1, 1, window, true) == expected);
    }

    SECTION("channels are cut alike, each from its own plane") {
        std::vector<float> two(image);
        for (const float v : image) two.push_back(100 + v);
        for (const auto& [window, expected] : mirrored) {
            std::vector<float> both(expected);
            for (const float v : expected) both.push_back(v == 0 ? 0 : 100 + v);
            CHECK(view_of(two, 2, 1, window, true) == both);
        }
    }
    SECTION("padding 0: every window is the image; padding 2 = H - 1: one image row left in a corner window") {
        for (const auto& [window, expected] : plain) CHECK(view_of(image, 1, 0, window, false) == image);
        CHECK(view_of(image, 1, 2, Window::top_left, false) == std::vector<float>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2});
        CHECK(view_of(image, 1, 2, Window::bottom_right, true) == std::vector<float>{10, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        CHECK(view_of(image, 1, 2, Window::centre, true) == mirrored.back().second);
    }
    SECTION("a padding that leaves a corner window without image pixels is refused, naming the flag") {
        CHECK_THAT(test::error_message([&] { view_of(image, 1, 3, Window::top_left, false); }),
                   Catch::Contains("--tta-padding 3: the corner windows of a 4x3 image padded by 3") &&
                       Catch::Contains("use 0 to 2"));
        CHECK_THAT(test::error_message([&] { eval::check_tta_padding(-1, 32, 32); }),
                   Catch::Contains("--tta-padding -1") && Catch::Contains("use 0 to 31"));
        CHECK_NOTHROW(eval::check_tta_padding(31, 32, 32));
    }
}

TEST_CASE("tta_views: TenCrop's order (five_crop of the image, then of its mirror image); flip, crops, none", "[eval]") {
    using V = eval::TtaView;
    const std::vector<V> five = {{Window::top_left, false}, {Window::top_right, false}, {Window::bottom_left, false},
                                 {Window::bottom_right, false}, {Window::centre, false}};
    std::vector<V> ten(five);
    for (const V& v : five) ten.push_back({v.window, true});
    CHECK(eval::tta_views(TtaViews::all) == ten);
    CHECK(eval::tta_views(TtaViews::crops) == five);
    CHECK(eval::tta_views(TtaViews::flip) == std::vector<V>{{Window::centre, false}, {Window::centre, true}});
    CHECK(eval::tta_views(TtaViews::none) == std::vector<V>{{Window::centre, false}});
    CHECK_THAT(eval::describe_tta({TtaViews::all, 4}),
               Catch::Contains("10 views") && Catch::Contains("zero-padded by 4 pixels") && Catch::Contains("mirrored"));
    CHECK_THAT(eval::describe_tta({TtaViews::crops, 2}), Catch::Contains("5 views") && Catch::Contains("by 2 pixels"));
    CHECK_THAT(eval::describe_tta({TtaViews::flip, 4}), Catch::Contains("mirror image"));
    CHECK(eval::describe_tta({TtaViews::none, 4}).empty());
}

TEST_CASE("Session::logits with TTA: the mean of the logits of its views, each run through the session alone", "[eval]") {
    // small_cnn with seeded weights (conv, batch norm, pooling: not invariant to any of the views).
    const test::TempDir dir;
    {
        graph::Executor executor(graph::build_graph(graph::builtin_model("small_cnn")), graph::ExecutorOptions{});
        executor.initialize(3);
        io::save_state_dict(executor.model_state(), dir.file("small.safetensors"), io::FloatStorage::f32,
                            {{"model", "small_cnn"}});
    }
    eval::SessionOptions options;
    options.batch_size = 4;  // 6 images: a full batch and a partial one
    eval::Session session(eval::load_model({"", dir.file("small.safetensors"), ""}), options);
    constexpr int64_t kCount = 6, kImage = 3 * 32 * 32, kClasses = 10;
    std::mt19937 random(17);
    std::uniform_real_distribution<float> unit(0.02f, 1.0f);  // no zeros: they would look like padding
    std::vector<float> pixels(kCount * kImage);
    for (float& v : pixels) v = unit(random);
    const HostTensor<float> plain = session.logits(pixels.data(), kCount);

    for (const eval::Tta tta : {eval::Tta{TtaViews::flip, 4}, eval::Tta{TtaViews::crops, 4},
                                eval::Tta{TtaViews::all, 4}, eval::Tta{TtaViews::all, 2}}) {
        INFO(eval::describe_tta(tta));
        const std::vector<eval::TtaView> views = eval::tta_views(tta.views);
        std::vector<float> sum(kCount * kClasses, 0.0f);
        for (const eval::TtaView& view : views) {
            std::vector<float> shown(pixels.size());
            for (int64_t n = 0; n < kCount; ++n)
                eval::tta_view(&pixels[n * kImage], 3, 32, 32, tta.padding, view.window, view.mirror, &shown[n * kImage]);
            const HostTensor<float> logits = session.logits(shown.data(), kCount);
            for (int64_t k = 0; k < kCount * kClasses; ++k) sum[k] += logits[k];
        }
        const HostTensor<float> averaged = session.logits(pixels.data(), kCount, tta);
        REQUIRE(averaged.shape() == Shape{kCount, kClasses});
        int64_t moved = 0;
        for (int64_t k = 0; k < kCount * kClasses; ++k) {
            // Same batches, same views, same float sum in the same order: the same bits.
            CHECK(averaged[k] == sum[k] / static_cast<float>(views.size()));
            moved += std::abs(averaged[k] - plain[k]) > 1e-4f ? 1 : 0;
        }
        CHECK(moved > kCount * kClasses / 2);  // the views are not the image over and over
    }
}
