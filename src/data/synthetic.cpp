// The synthetic dataset: 10 classes of procedural 32×32 colour images, each class a shape or a texture.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"
#include "draws.hpp"

namespace cudacnn::data {

const std::vector<std::string>& synthetic_class_names() {
    static const std::vector<std::string> names{
        "circle",           "square",           "triangle",     "plus", "ring", "horizontal_stripes",
        "vertical_stripes", "diagonal_stripes", "checkerboard", "dots"};
    return names;
}

namespace {

constexpr int64_t kSide = 32, kChannels = 3, kClasses = 10;

// The draws of one record, in order: element k of its stream is draw number k.
class Draws {
  public:
    Draws(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

    uint32_t next() {
        if (k_ % 4 == 0) block_ = philox_draw(seed_, stream_, k_ / 4);
        return block_.v[k_++ % 4];
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * uint32_to_unit_float(next()); }
    int integer(int lo, int hi) {
        return lo + static_cast<int>(detail::below(next(), hi - lo + 1));
    }  // [lo, hi]

  private:
    uint64_t seed_, stream_;
    uint64_t k_ = 0;
    PhiloxBlock block_{};
};

// Which pixels show the foreground colour: (H, W), 1 = foreground.
using Mask = std::vector<uint8_t>;

// Fills the mask from f(x, y) evaluated at pixel centres.
template <class F>
void paint(Mask& mask, F inside) {
    for (int64_t y = 0; y < kSide; ++y) {
        for (int64_t x = 0; x < kSide; ++x) {
            mask[y * kSide + x] = inside(static_cast<float>(x) + 0.5f, static_cast<float>(y) + 0.5f) ? 1 : 0;
        }
    }
}

// frac(t) < 0.5: alternating bands of width period / 2.
bool band(float t, float period) {
    const float u = t / period;
    return u - std::floor(u) < 0.5f;
}

// The class's shape or texture, with its size, position and phase drawn from d. Shapes sit near the centre
// and vary in size; textures cover the image with a random period and phase.
void draw_mask(int64_t label, Draws& d, Mask& mask) {
    const float cx = d.uniform(11.0f, 21.0f), cy = d.uniform(11.0f, 21.0f);
    switch (label) {
        case 0: {  // filled circle
            const float r = d.uniform(5.0f, 11.0f);
            paint(mask, [&](float x, float y) { return (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r; });
            break;
        }
        case 1: {  // filled axis-aligned square
            const float h = d.uniform(4.0f, 9.5f);
            paint(mask, [&](float x, float y) { return std::fabs(x - cx) <= h && std::fabs(y - cy) <= h; });
            break;
        }
        case 2: {  // triangle pointing up: its half-width grows from 0 at the apex to h at the base
            const float h = d.uniform(6.0f, 11.0f);
            paint(mask, [&](float x, float y) {
                const float t = (y - (cy - h)) / (2.0f * h);
                return t >= 0.0f && t <= 1.0f && std::fabs(x - cx) <= h * t;
            });
            break;
        }
        case 3: {  // plus: two bars of half-length l and half-thickness w
            const float l = d.uniform(6.0f, 12.0f), w = d.uniform(1.0f, 2.5f);
            paint(mask, [&](float x, float y) {
                const float ax = std::fabs(x - cx), ay = std::fabs(y - cy);
                return (ax <= w && ay <= l) || (ay <= w && ax <= l);
            });
            break;
        }
        case 4: {  // ring of outer radius r and thickness t
            const float r = d.uniform(7.0f, 12.0f), t = d.uniform(1.5f, 3.0f);
            paint(mask, [&](float x, float y) {
                const float dist = std::sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                return dist <= r && dist >= r - t;
            });
            break;
        }
        case 5:    // horizontal stripes
        case 6:    // vertical stripes
        case 7: {  // diagonal stripes (along x + y, the period measured across the stripes)
            const float period = d.uniform(4.0f, 10.0f), phase = d.uniform(0.0f, period);
            paint(mask, [&](float x, float y) {
                const float t = label == 5 ? y : label == 6 ? x : (x + y) * 0.70710678f;
                return band(t + phase, period);
            });
            break;
        }
        case 8: {  // checkerboard of s×s cells
            const float s = d.uniform(3.0f, 7.0f), px = d.uniform(0.0f, 2 * s), py = d.uniform(0.0f, 2 * s);
            paint(mask, [&](float x, float y) { return band(x + px, 2 * s) != band(y + py, 2 * s); });
            break;
        }
        default: {  // scattered dots: n discs of radius rho anywhere
            const int n = d.integer(10, 18);
            const float rho = d.uniform(1.0f, 1.8f);
            std::fill(mask.begin(), mask.end(), 0);
            for (int i = 0; i < n; ++i) {
                const float dx = d.uniform(1.0f, 31.0f), dy = d.uniform(1.0f, 31.0f);
                for (int64_t y = 0; y < kSide; ++y) {
                    for (int64_t x = 0; x < kSide; ++x) {
                        const float ex = static_cast<float>(x) + 0.5f - dx,
                                    ey = static_cast<float>(y) + 0.5f - dy;
                        if (ex * ex + ey * ey <= rho * rho) mask[y * kSide + x] = 1;
                    }
                }
            }
            break;
        }
    }
}

// One record into out (C, H, W): background and foreground colours that differ by 64 to 128 in every channel
// (in either direction, so neither is brighter by class), the class's mask, and uniform noise of a random
// amplitude up to 24 levels, clamped to [0, 255].
void draw_record(int64_t label, Draws& d, Mask& mask, uint8_t* out) {
    int background[kChannels], foreground[kChannels];
    for (int64_t c = 0; c < kChannels; ++c) {
        background[c] = d.integer(0, 255);
        foreground[c] = (background[c] + d.integer(64, 192)) % 256;
    }
    const int amplitude = d.integer(0, 24);
    draw_mask(label, d, mask);
    uint32_t noise_bits = 0;
    for (int64_t i = 0; i < kChannels * kSide * kSide; ++i) {
        if (i % 4 == 0) noise_bits = d.next();  // four noise values per draw, one byte each
        const int noise = static_cast<int>(detail::below(noise_bits << 24, 2 * amplitude + 1)) - amplitude;
        noise_bits >>= 8;
        const int64_t c = i / (kSide * kSide);
        const int base = mask[i % (kSide * kSide)] ? foreground[c] : background[c];
        out[i] = static_cast<uint8_t>(std::clamp(base + noise, 0, 255));
    }
}

Dataset make_split(int64_t size, uint64_t seed, uint64_t stream_base, const char* split) {
    CUDACNN_CHECK(size >= 0, "make_synthetic: {} size {} must be >= 0", split, size);
    Dataset out;
    out.name = std::string("synthetic ") + split;
    out.channels = kChannels;
    out.height = out.width = kSide;
    out.num_classes = kClasses;
    out.class_names = synthetic_class_names();
    out.images.resize(static_cast<size_t>(size * out.image_bytes()));
    out.labels.resize(static_cast<size_t>(size));
    Mask mask(kSide * kSide);
    for (int64_t i = 0; i < size; ++i) {
        Draws draws(seed, detail::stream_at(stream_base, i, "make_synthetic: record"));
        out.labels[i] = i % kClasses;
        draw_record(out.labels[i], draws, mask, out.images.data() + i * out.image_bytes());
    }
    return out;
}

}  // namespace

Splits make_synthetic(const SyntheticOptions& options) {
    return Splits{make_split(options.train_size, options.seed, kSyntheticTrainStream, "train"),
                  make_split(options.test_size, options.seed, kSyntheticTestStream, "test")};
}

}  // namespace cudacnn::data
