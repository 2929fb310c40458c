// The augmentation pipeline: a spec (text and JSON) of torchvision-style ops, the Philox rule that draws
// every op's random parameters, and the CPU reference that applies them to one float image.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/philox.hpp"

namespace cudacnn::data {

// ---- Ops ------------------------------------------------------------------------------------------------
// Every op works on one float (C, H, W) image with values in [0, 1] (ToTensor's output) before Normalize,
// with torchvision's semantics and parameter names; normalize is the one op whose output leaves [0, 1].
enum class AugmentKind {
    crop,
    hflip,
    vflip,
    jitter,
    grayscale,
    erasing,
    noise,
    saltpepper,
    normalize,
    affine,
    rotation,
    centercrop,
    resizedcrop,
    perspective
};
// torchvision's padding_mode: constant (fill), edge (repeat the border), reflect (mirror without repeating
// the border: d c b | a b c d | c b a), symmetric (mirror repeating it: b a | a b c d | d c).
enum class PadMode { constant, edge, reflect, symmetric };

struct Range {
    float lo = 0.0f, hi = 0.0f;
};

// One op of a pipeline; only the fields of its kind are used (a plain struct a kernel can take by value).
struct AugmentOp {
    AugmentKind kind = AugmentKind::hflip;
    // crop = RandomCrop(size, padding, fill, padding_mode): pad every side by `padding`, then a size × size
    // window at a uniform offset of the padded image (size <= the padded height and width).
    int64_t size = 32, padding = 0;
    PadMode padding_mode = PadMode::constant;
    // hflip, vflip, grayscale, erasing, perspective: the probability of applying the op.
    float p = 0.5f;
    // jitter = ColorJitter: factor ranges as torchvision turns its arguments into them (brightness b gives
    // [max(0, 1-b), 1+b], hue h gives [-h, h]); an identity range (1-1, hue 0-0) skips that adjustment,
    // as torchvision does for None.
    Range brightness{1, 1}, contrast{1, 1}, saturation{1, 1}, hue{0, 0};
    // erasing = RandomErasing(p, scale, ratio, value): area fraction and aspect-ratio ranges.
    Range scale{0.02f, 0.33f}, ratio{0.3f, 3.3f};
    // affine = RandomAffine(degrees, translate, scale, shear, interpolation, fill) about the image centre:
    // angle in degrees, translate as fractions of width and height, x shear only; rotation =
    // RandomRotation(degrees, interpolation, fill) (expand=False, about the centre). Nearest is torchvision's
    // default interpolation.
    Range degrees{0, 0};
    std::array<float, 2> translate{0, 0};
    Range affine_scale{1, 1}, shear{0, 0};
    bool bilinear = false;
    // perspective = RandomPerspective(distortion_scale, p, interpolation, fill) (bilinear by default).
    float distortion_scale = 0.5f;
    // centercrop = CenterCrop(size) uses `size` (at most the image's height and width); resizedcrop =
    // RandomResizedCrop(size, scale, ratio) (bilinear, no antialias: torchvision 0.14's tensor default) uses
    // `size`, `scale` and `ratio` (defaults 0.08-1 and 3/4-4/3).
    // crop's, affine's, rotation's and perspective's fill and erasing's value, per channel (one number given:
    // all channels); erasing's value="random" (random_value) erases with standard normal values instead.
    std::array<float, 3> fill{0, 0, 0};
    bool random_value = false;
    // noise = GaussianNoise(mean, sigma, clip=True) of torchvision.transforms.v2.
    float mean = 0.0f, sigma = 0.1f;
    // saltpepper = skimage.util.random_noise(mode="s&p", amount, salt_vs_pepper): each value independently
    // becomes 1 (salt) or 0 (pepper) with probability amount.
    float amount = 0.05f, salt_vs_pepper = 0.5f;
    // normalize = Normalize(mean, std): x = (x - mean[c]) / std[c] in float32.
    std::array<float, 3> norm_mean{0, 0, 0}, norm_std{1, 1, 1};
};
using AugmentSpec = std::vector<AugmentOp>;

// ---- Spec text ------------------------------------------------------------------------------------------
// Grammar (no spaces): SPEC = OP ("," OP)* ; OP = NAME (":" ARG)* ; positional arguments, trailing ones may
// be left out (defaults in brackets):
//   crop:SIZE[:PADDING=0[:MODE=constant[:FILL=0]]]       MODE constant|edge|reflect|symmetric
//   hflip[:P=0.5]   vflip[:P=0.5]   grayscale[:P=0.1]
//   jitter:B[:C=0[:S=0[:H=0]]]                             each a number f or a range LO-HI (e.g. 0.9-1.1)
//   erasing[:P=0.5[:SCALE=0.02-0.33[:RATIO=0.3-3.3[:VALUE=0]]]]
//   noise:SIGMA[:MEAN=0]   saltpepper:AMOUNT[:SALT_VS_PEPPER=0.5]   normalize:MEAN:STD
//   affine:DEGREES[:TRANSLATE=0[:SCALE=1-1[:SHEAR=0[:INTERP=nearest[:FILL=0]]]]]
//       DEGREES and SHEAR a number d (-d to d) or LO-HI; TRANSLATE t or TX/TY; SCALE LO-HI or a number;
//       INTERP nearest|bilinear
//   rotation:DEGREES[:INTERP=nearest[:FILL=0]]   centercrop:SIZE
//   resizedcrop:SIZE[:SCALE=0.08-1[:RATIO=0.75-1.33333337]]
//   perspective[:DISTORTION=0.5[:P=0.5[:INTERP=bilinear[:FILL=0]]]]
// NUMBER is a decimal float; FILL, VALUE, MEAN and STD of normalize are one number or three joined by "/"
// (0.4914/0.4822/0.4465); erasing's VALUE may also be "random". A bad spec is an Error naming the token and
// what is accepted there.
AugmentSpec parse_augment_spec(const std::string& spec);
// The canonical text of a spec (every argument written out); parse_augment_spec gives the same ops back.
std::string format_augment_spec(const AugmentSpec& spec);
// The seed's training transform: RandomCrop(32, padding=4) + RandomHorizontalFlip() = "crop:32:4,hflip".
AugmentSpec default_augment_spec();
// An op of that kind with every argument at its default (grayscale p = 0.1, resizedcrop's scale and ratio).
AugmentOp default_augment_op(AugmentKind kind);

// ---- Spec JSON ------------------------------------------------------------------------------------------
// An array of objects, one per op: {"op": "crop", "size": 32, "padding": 4, "padding_mode": "constant",
// "fill": [0, 0, 0]}, with torchvision's argument names (jitter: brightness/contrast/saturation/hue as
// [lo, hi]; erasing: p, scale, ratio, value; normalize: mean, std; affine: degrees, translate [tx, ty],
// scale, shear, interpolation, fill; rotation: degrees, interpolation, fill; centercrop: size; resizedcrop:
// size, scale, ratio; perspective: distortion_scale, p, interpolation, fill; erasing's value may be
// "random"). Missing keys take default_augment_op's values, except the sizes, normalize's mean
// and std and the degrees; unknown ops or keys are Errors naming them.
nlohmann::json augment_spec_to_json(const AugmentSpec& spec);
AugmentSpec augment_spec_from_json(const nlohmann::json& json);
// A command line's spec: the text grammar, or, for a value ending in ".json", the file holding the JSON form.
// Errors: the parsers', a file that cannot be opened, a file that is not JSON (the caller names the flag
// and the value).
AugmentSpec read_augment_spec(const std::string& text_or_path);

// ---- Random parameters ----------------------------------------------------------------------------------
// Streams, beside dataset.hpp's (kAugmentStream + epoch holds the per-op words).
constexpr uint64_t kAugmentPixelStream = 0xDA7A0010ull << 32;  // + epoch: per-value noise draws

// The rule. Sample `position` of epoch `epoch` has a sequence of 32-bit words
//   word(j) = philox_draw(seed, kAugmentStream + epoch, position + (j / 4) · 2^32).v[j % 4],
// and op k of the spec uses words [offset_k, offset_k + augment_word_count(kind_k)), offset_k being the sum
// of the counts of ops 0..k-1 (augment_word_offsets). Words 0-3 are assemble_batch's block, so "crop:32:P,
// hflip" draws what assemble_batch draws. u(w) = uint32_to_unit_float(w) in [0, 1), below(w, n) =
// (w · n) >> 32 in [0, n), lerp(r, w) = r.lo + (r.hi - r.lo) · u(w) in float. Every op draws its words
// whether it uses them or not (so offsets never depend on the draws). Per op, with its words w0, w1, ...:
//   crop:      top = below(w0, Hp - size + 1), left = below(w1, Wp - size + 1) in the padded image Hp × Wp
//   hflip, vflip, grayscale: apply when u(w0) < p
//   jitter:    factor_i = lo_i + (hi_i - lo_i) · u(w_i) for brightness, contrast, saturation, hue (i = 0..3);
//              order = permutation number below(w4, 24) of (0 1 2 3) in lexicographic order
//   erasing:   apply when u(w0) < p; then up to 10 attempts a = 0..9 with w = w(1+4a) .. w(4+4a):
//              area = H·W · (scale.lo + (scale.hi - scale.lo) · u(w(1+4a))),
//              aspect = exp(log(ratio.lo) + (log(ratio.hi) - log(ratio.lo)) · u(w(2+4a))),
//              (log and exp rounded to float from double, area and sqrt in double, as torchvision's float32
//              tensors and Python floats do), h = round(sqrt(area · aspect)), w = round(sqrt(area / aspect))
//              (Python's round: half to even),
//              the first attempt with h < H and w < W wins: top = below(w(3+4a), H-h+1),
//              left = below(w(4+4a), W-w+1); none wins: no erasing (torchvision's fallback returns the image)
//   noise, saltpepper: no words; value e (flat (c, y, x) index of the op's input) of op k uses
//              pixel(e) = philox_draw(seed, kAugmentPixelStream + epoch,
//                                     position · 2^32 + k · 2^24 + e / 4).v[e % 4]
//              (k < 256, at most 2^26 draws, so 2^25 values): noise draws two values 2e and 2e+1 of that sequence,
//              z = sqrt(-2 ln(1 - u(a))) · cos(2π u(b)) in float (Box-Muller); saltpepper draws one, r =
//              u(pixel(e)): r < amount · salt_vs_pepper gives 1, else r < amount gives 0. Erasing with
//              value "random" gives value e of its box noise's z (e indexes the whole image).
//   affine:    angle = lerp(degrees, w0); tx = round(lerp(-translate[0]·W, translate[0]·W, w1)), ty likewise
//              from w2 with H (half to even); scale = lerp(scale, w3); shear = lerp(shear, w4)
//   rotation:  angle = lerp(degrees, w0)
//   resizedcrop: up to 10 attempts a = 0..9 from w(4a) .. w(3+4a), as erasing's (area from SCALE, aspect
//              from RATIO) but w = round(sqrt(area · aspect)), h = round(sqrt(area / aspect)), accepted
//              when 0 < w <= W and 0 < h <= H; top = below(w(2+4a), H-h+1), left = below(w(3+4a), W-w+1);
//              none accepted: torchvision's central fallback (ratio clamped to RATIO)
//   perspective: apply when u(w0) < p; with dx = int(distortion_scale · (W / 2)) (in double, as Python
//              computes it) and dy likewise, the
//              corners (x, y) top-left, top-right, bottom-right, bottom-left are randint(lo, hi) = lo +
//              below(w, hi - lo) of w1 .. w8: tl (0..dx, 0..dy), tr (W-dx-1..W-1, 0..dy),
//              br (W-dx-1..W-1, H-dy-1..H-1), bl (0..dx, H-dy-1..H-1) (always drawn, as torchvision does)
//   normalize, centercrop: no words.
int64_t augment_word_count(AugmentKind kind);
std::vector<int64_t> augment_word_offsets(const AugmentSpec& spec);

// The drawn parameters of one op for one sample (only the fields of its kind are set).
struct AugmentParams {
    bool apply = false;                    // hflip, vflip, grayscale, erasing
    int64_t top = 0, left = 0;             // crop (in the padded image), erasing
    int64_t height = 0, width = 0;         // erasing's box
    std::array<float, 4> factors{};        // jitter: brightness, contrast, saturation, hue
    std::array<int, 4> order{0, 1, 2, 3};  // jitter: adjustments in this order (0 = brightness ... 3 = hue)
    float angle = 0.0f, scale = 1.0f, shear = 0.0f;  // affine, rotation (degrees)
    int64_t translate_x = 0, translate_y = 0;        // affine (pixels)
    std::array<int64_t, 8> corners{};                // perspective: where the image corners go (x, y each)
};

// Op k's parameters for an input of height × width (the size after the ops before it).
AugmentParams draw_augment_params(const AugmentOp& op, uint64_t seed, int64_t epoch, int64_t position,
                                  int64_t word_offset, int64_t height, int64_t width);

// ---- CPU reference --------------------------------------------------------------------------------------
struct FloatImage {
    int64_t channels = 3, height = 0, width = 0;
    std::vector<float> values;  // (C, H, W)
    float at(int64_t c, int64_t y, int64_t x) const { return values[(c * height + y) * width + x]; }
};
// ToTensor: value / 255.0f.
FloatImage to_float_image(const uint8_t* chw, int64_t channels, int64_t height, int64_t width);

// One op with given parameters (op_index and the sample's identity feed the per-value draws of noise and
// saltpepper only).
FloatImage apply_augment_op(const AugmentOp& op, const AugmentParams& params, const FloatImage& image,
                            uint64_t seed, int64_t epoch, int64_t position, int64_t op_index);
// The whole spec on one sample: draws and applies every op in order.
FloatImage augment_image(const AugmentSpec& spec, const FloatImage& image, uint64_t seed, int64_t epoch,
                         int64_t position);

// torchvision.transforms.functional's adjustments on a float image (exposed for tests and kernels' parity).
FloatImage adjust_brightness(const FloatImage& image, float factor);
FloatImage adjust_contrast(const FloatImage& image, float factor);
FloatImage adjust_saturation(const FloatImage& image, float factor);
FloatImage adjust_hue(const FloatImage& image, float hue_factor);
FloatImage rgb_to_grayscale(const FloatImage& image, int64_t output_channels);
// F.interpolate(mode="bilinear", align_corners=False, antialias=False) of the window (top, left, height,
// width) to size × size, in float32 with ATen's upsample_bilinear2d indices and weights (F.resized_crop);
// ATen rounds the products in another order, so values may differ by an ulp.
FloatImage resize_bilinear(const FloatImage& image, int64_t top, int64_t left, int64_t height, int64_t width,
                           int64_t size);

// torchvision's _get_inverse_affine_matrix (centre (0, 0), i.e. the image centre), in double: the 2×3 matrix
// from output to input pixel coordinates relative to the centre, as F.affine passes it. F.rotate(angle) is
// this with -angle and no translation, scale 1 and no shear.
std::array<double, 6> inverse_affine_matrix(double angle, double translate_x, double translate_y,
                                            double scale, double shear_x, double shear_y);
// F_t.affine's sampling with that matrix (rounded to float32 as torch does): _gen_affine_grid, grid_sample
// (align_corners=False, zeros) of the image and of a ones mask, then the fill blended by the mask
// (bilinear: v·m + (1-m)·fill; nearest: fill where m < 0.5), as torchvision does with a fill list.
// Float32 throughout; torch's bmm may sum in another order, so coordinates can differ by an ulp or so.
FloatImage warp_affine(const FloatImage& image, const std::array<double, 6>& matrix, bool bilinear,
                       const std::array<float, 3>& fill);
// F_t.perspective with the coefficients of corners (AugmentParams::corners): _perspective_grid, then the same
// grid sampling and fill as warp_affine. The 8×8 system is solved in double (torch: float32 least squares),
// so coordinates can differ from torchvision's by a few ulps.
FloatImage warp_perspective(const FloatImage& image, const std::array<int64_t, 8>& corners, bool bilinear,
                            const std::array<float, 3>& fill);

// ---- Whole pipelines ------------------------------------------------------------------------------------
struct ImageShape {
    int64_t channels = 3, height = 32, width = 32;
    bool operator==(const ImageShape& o) const {
        return channels == o.channels && height == o.height && width == o.width;
    }
};
// The shape before each op of `spec` and after the last (spec.size() + 1 entries) for an input of `input`,
// with every op's arguments checked against its input: a crop larger than the padded image, reflect padding
// too large, a centre crop larger than the image, jitter or grayscale on other than 1 or 3 channels, more
// channels than normalize's 3, an op drawing per-value noise after the 256th op, images too large for the
// per-value draws (2^25 values). The Error names
// the op (its index and canonical text), its input shape and what would work.
std::vector<ImageShape> augment_shapes(const AugmentSpec& spec, const ImageShape& input);

// The training transform of a run: `spec`, then Normalize(normalization) unless the spec has a normalize op of
// its own.
AugmentSpec with_normalization(AugmentSpec spec, const std::array<float, 3>& mean, const std::array<float, 3>& std);

// A spec that data::assemble_batch / gpu::assemble_batch compute in one pass: "crop:S:P" (constant mode,
// fill 0, S the image size), optionally followed by "hflip" with p 0.5, then one normalize, on an S × S image;
// or the normalize alone. Gives the fused form's arguments (padding 0 without a crop, horizontal_flip false without the
// flip); the two paths give the same floats, bit for bit.
struct FusedCropFlip {
    int64_t crop_padding = 0;
    bool horizontal_flip = false;
    std::array<float, 3> mean{0, 0, 0}, stddev{1, 1, 1};
};
bool fused_crop_flip(const AugmentSpec& spec, const ImageShape& input, FusedCropFlip* fused);

// Fills x (count, shape after the spec) and labels (count) from the uint8 images (C, H, W each) of
// records `indices[0..count)`: each through to_float_image and augment_image with position first_position + i.
void augment_batch(const uint8_t* images, const int64_t* dataset_labels, const ImageShape& input,
                   const int64_t* indices, int64_t count, const AugmentSpec& spec, uint64_t seed, int64_t epoch,
                   int64_t first_position, float* x, int64_t* labels);

}  // namespace cudacnn::data
