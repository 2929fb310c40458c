// The augmentation spec's text form: parse_augment_spec, format_augment_spec and the default spec.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::data {

namespace {

constexpr const char* kOpNames =
    "crop:SIZE[:PADDING[:MODE[:FILL]]], hflip[:P], vflip[:P], jitter:B[:C[:S[:H]]], grayscale[:P], "
    "erasing[:P[:SCALE[:RATIO[:VALUE]]]], noise:SIGMA[:MEAN], saltpepper:AMOUNT[:SALT_VS_PEPPER], "
    "normalize:MEAN:STD, affine:DEGREES[:TRANSLATE[:SCALE[:SHEAR[:INTERP[:FILL]]]]], "
    "rotation:DEGREES[:INTERP[:FILL]], centercrop:SIZE, resizedcrop:SIZE[:SCALE[:RATIO]], "
    "perspective[:DISTORTION[:P[:INTERP[:FILL]]]]";

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        const size_t end = text.find(sep, start);
        parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
        if (end == std::string::npos) return parts;
        start = end + 1;
    }
}

// The op being parsed, so that every error names the spec, the op and the bad token.
struct OpContext {
    const std::string& spec;
    const std::string& op_text;
    int64_t index;

    [[noreturn]] void fail(const std::string& token, const std::string& accepted) const {
        CUDACNN_FAIL("augment spec \"{}\": bad token \"{}\" in op {} \"{}\": accepted {}", spec, token, index,
                     op_text, accepted);
    }
};

float parse_number(const OpContext& ctx, const std::string& token, const std::string& accepted) {
    if (token.empty()) ctx.fail(token, accepted);
    errno = 0;
    char* end = nullptr;
    const float value = std::strtof(token.c_str(), &end);
    if (end != token.c_str() + token.size() || errno != 0 || !std::isfinite(value)) ctx.fail(token, accepted);
    return value;
}

float parse_in(const OpContext& ctx, const std::string& token, float lo, float hi, const std::string& what) {
    const std::string accepted = fmt::format("{} in [{}, {}]", what, lo, hi);
    const float value = parse_number(ctx, token, accepted);
    if (!(value >= lo && value <= hi)) ctx.fail(token, accepted);
    return value;
}

int64_t parse_int(const OpContext& ctx, const std::string& token, int64_t lo, const std::string& what) {
    const std::string accepted = fmt::format("{}: an integer >= {}", what, lo);
    if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos)
        ctx.fail(token, accepted);
    const int64_t value = std::stoll(token);
    if (value < lo) ctx.fail(token, accepted);
    return value;
}

// LO-HI: the '-' that ends LO is the first one after a digit or '.', so negative bounds work ("-0.1-0.1").
bool split_range(const std::string& token, std::string& lo, std::string& hi) {
    for (size_t i = 1; i < token.size(); ++i) {
        const char prev = token[i - 1];
        if (token[i] == '-' && ((prev >= '0' && prev <= '9') || prev == '.')) {
            lo = token.substr(0, i);
            hi = token.substr(i + 1);
            return true;
        }
    }
    return false;
}

Range parse_range(const OpContext& ctx, const std::string& token, float min, float max,
                  const std::string& what) {
    const std::string accepted = fmt::format("{}: LO-HI with {} <= LO <= HI <= {}", what, min, max);
    std::string lo, hi;
    if (!split_range(token, lo, hi)) ctx.fail(token, accepted);
    const Range r{parse_number(ctx, lo, accepted), parse_number(ctx, hi, accepted)};
    if (!(r.lo >= min && r.lo <= r.hi && r.hi <= max)) ctx.fail(token, accepted);
    return r;
}

// ColorJitter's argument: a number f (brightness, contrast, saturation: [max(0, 1-f), 1+f]; hue: [-f, f])
// or an explicit range.
Range parse_jitter(const OpContext& ctx, const std::string& token, bool hue, const std::string& what) {
    std::string lo, hi;
    if (split_range(token, lo, hi)) {
        return hue ? parse_range(ctx, token, -0.5f, 0.5f, what) : parse_range(ctx, token, 0.0f, 1e30f, what);
    }
    if (hue) {
        const float h = parse_in(ctx, token, 0.0f, 0.5f, what + " (a number or LO-HI)");
        return Range{-h, h};
    }
    const float f = parse_in(ctx, token, 0.0f, 1e30f, what + " (a number or LO-HI)");
    return Range{std::max(0.0f, 1.0f - f), 1.0f + f};
}

std::array<float, 3> parse_triple(const OpContext& ctx, const std::string& token, const std::string& what,
                                  bool positive) {
    const std::string accepted =
        fmt::format("{}: one number or three joined by '/'{}", what, positive ? ", each > 0" : "");
    const std::vector<std::string> parts = split(token, '/');
    if (parts.size() != 1 && parts.size() != 3) ctx.fail(token, accepted);
    std::array<float, 3> values{};
    for (size_t c = 0; c < 3; ++c) {
        values[c] = parse_number(ctx, parts[parts.size() == 1 ? 0 : c], accepted);
        if (positive && !(values[c] > 0.0f)) ctx.fail(token, accepted);
    }
    return values;
}

// A number d (the range -d to d, d >= 0) or LO-HI within [-limit, limit].
Range parse_symmetric(const OpContext& ctx, const std::string& token, float limit, const std::string& what) {
    std::string lo, hi;
    if (split_range(token, lo, hi)) return parse_range(ctx, token, -limit, limit, what);
    const float d = parse_in(ctx, token, 0.0f, limit, what + " (a number or LO-HI)");
    return Range{-d, d};
}

bool parse_interpolation(const OpContext& ctx, const std::string& token) {
    if (token == "nearest") return false;
    if (token == "bilinear") return true;
    ctx.fail(token, "INTERP: nearest or bilinear");
}

Range parse_scale(const OpContext& ctx, const std::string& token) {
    std::string lo, hi;
    Range r;
    if (split_range(token, lo, hi)) {
        r = parse_range(ctx, token, 0.0f, 1e30f, "SCALE");
    } else {
        const float s = parse_in(ctx, token, 0.0f, 1e30f, "SCALE (a number or LO-HI, > 0)");
        r = Range{s, s};
    }
    if (!(r.lo > 0.0f)) ctx.fail(token, "SCALE: a number or LO-HI, > 0");
    return r;
}

PadMode parse_mode(const OpContext& ctx, const std::string& token) {
    if (token == "constant") return PadMode::constant;
    if (token == "edge") return PadMode::edge;
    if (token == "reflect") return PadMode::reflect;
    if (token == "symmetric") return PadMode::symmetric;
    ctx.fail(token, "MODE: constant, edge, reflect or symmetric");
}

AugmentKind parse_kind(const OpContext& ctx, const std::string& name) {
    static const std::pair<const char*, AugmentKind> kinds[] = {{"crop", AugmentKind::crop},
                                                                {"hflip", AugmentKind::hflip},
                                                                {"vflip", AugmentKind::vflip},
                                                                {"jitter", AugmentKind::jitter},
                                                                {"grayscale", AugmentKind::grayscale},
                                                                {"erasing", AugmentKind::erasing},
                                                                {"noise", AugmentKind::noise},
                                                                {"saltpepper", AugmentKind::saltpepper},
                                                                {"normalize", AugmentKind::normalize},
                                                                {"affine", AugmentKind::affine},
                                                                {"rotation", AugmentKind::rotation},
                                                                {"centercrop", AugmentKind::centercrop},
                                                                {"resizedcrop", AugmentKind::resizedcrop},
                                                                {"perspective", AugmentKind::perspective}};
    for (const auto& [text, kind] : kinds)
        if (name == text) return kind;
    ctx.fail(name, fmt::format("an op: {}", kOpNames));
}

// The number of arguments each op takes: at least, at most, and the usage line.
struct Arity {
    size_t min, max;
    const char* usage;
};

Arity arity(AugmentKind kind) {
    switch (kind) {
        case AugmentKind::crop:
            return {1, 4, "crop:SIZE[:PADDING[:MODE[:FILL]]]"};
        case AugmentKind::hflip:
            return {0, 1, "hflip[:P]"};
        case AugmentKind::vflip:
            return {0, 1, "vflip[:P]"};
        case AugmentKind::jitter:
            return {1, 4, "jitter:B[:C[:S[:H]]]"};
        case AugmentKind::grayscale:
            return {0, 1, "grayscale[:P]"};
        case AugmentKind::erasing:
            return {0, 4, "erasing[:P[:SCALE[:RATIO[:VALUE]]]]"};
        case AugmentKind::noise:
            return {1, 2, "noise:SIGMA[:MEAN]"};
        case AugmentKind::saltpepper:
            return {1, 2, "saltpepper:AMOUNT[:SALT_VS_PEPPER]"};
        case AugmentKind::normalize:
            return {2, 2, "normalize:MEAN:STD"};
        case AugmentKind::affine:
            return {1, 6, "affine:DEGREES[:TRANSLATE[:SCALE[:SHEAR[:INTERP[:FILL]]]]]"};
        case AugmentKind::rotation:
            return {1, 3, "rotation:DEGREES[:INTERP[:FILL]]"};
        case AugmentKind::centercrop:
            return {1, 1, "centercrop:SIZE"};
        case AugmentKind::resizedcrop:
            return {1, 3, "resizedcrop:SIZE[:SCALE[:RATIO]]"};
        case AugmentKind::perspective:
            return {0, 4, "perspective[:DISTORTION[:P[:INTERP[:FILL]]]]"};
    }
    return {0, 0, ""};
}

AugmentOp parse_op(const OpContext& ctx) {
    const std::vector<std::string> parts = split(ctx.op_text, ':');
    AugmentOp op = default_augment_op(parse_kind(ctx, parts[0]));
    const Arity a = arity(op.kind);
    const size_t n = parts.size() - 1;
    if (n < a.min || n > a.max)
        ctx.fail(ctx.op_text, fmt::format("{} ({} to {} arguments, got {})", a.usage, a.min, a.max, n));
    auto arg = [&](size_t i) -> const std::string* { return i < n ? &parts[i + 1] : nullptr; };
    switch (op.kind) {
        case AugmentKind::crop:
            op.size = parse_int(ctx, *arg(0), 1, "SIZE");
            if (arg(1)) op.padding = parse_int(ctx, *arg(1), 0, "PADDING");
            if (arg(2)) op.padding_mode = parse_mode(ctx, *arg(2));
            if (arg(3)) op.fill = parse_triple(ctx, *arg(3), "FILL", false);
            break;
        case AugmentKind::hflip:
        case AugmentKind::vflip:
        case AugmentKind::grayscale:
            if (arg(0)) op.p = parse_in(ctx, *arg(0), 0.0f, 1.0f, "P");
            break;
        case AugmentKind::jitter:
            op.brightness = parse_jitter(ctx, *arg(0), false, "B (brightness)");
            if (arg(1)) op.contrast = parse_jitter(ctx, *arg(1), false, "C (contrast)");
            if (arg(2)) op.saturation = parse_jitter(ctx, *arg(2), false, "S (saturation)");
            if (arg(3)) op.hue = parse_jitter(ctx, *arg(3), true, "H (hue)");
            break;
        case AugmentKind::erasing:
            if (arg(0)) op.p = parse_in(ctx, *arg(0), 0.0f, 1.0f, "P");
            if (arg(1)) op.scale = parse_range(ctx, *arg(1), 0.0f, 1.0f, "SCALE");
            if (arg(2)) {
                op.ratio = parse_range(ctx, *arg(2), 0.0f, 1e30f, "RATIO");
                if (!(op.ratio.lo > 0.0f)) ctx.fail(*arg(2), "RATIO: LO-HI with 0 < LO <= HI");
            }
            if (arg(3)) {
                op.random_value = *arg(3) == "random";
                if (!op.random_value) op.fill = parse_triple(ctx, *arg(3), "VALUE (or \"random\")", false);
            }
            break;
        case AugmentKind::noise:
            op.sigma = parse_in(ctx, *arg(0), 0.0f, 1e30f, "SIGMA");
            if (arg(1)) op.mean = parse_number(ctx, *arg(1), "MEAN: a number");
            break;
        case AugmentKind::saltpepper:
            op.amount = parse_in(ctx, *arg(0), 0.0f, 1.0f, "AMOUNT");
            if (arg(1)) op.salt_vs_pepper = parse_in(ctx, *arg(1), 0.0f, 1.0f, "SALT_VS_PEPPER");
            break;
        case AugmentKind::normalize:
            op.norm_mean = parse_triple(ctx, *arg(0), "MEAN", false);
            op.norm_std = parse_triple(ctx, *arg(1), "STD", true);
            break;
        case AugmentKind::affine:
            op.degrees = parse_symmetric(ctx, *arg(0), 360.0f, "DEGREES");
            if (arg(1)) {
                const std::vector<std::string> t = split(*arg(1), '/');
                if (t.size() > 2) ctx.fail(*arg(1), "TRANSLATE: T or TX/TY, each in [0, 1]");
                for (size_t i = 0; i < 2; ++i)
                    op.translate[i] =
                        parse_in(ctx, t[t.size() == 1 ? 0 : i], 0.0f, 1.0f, "TRANSLATE (T or TX/TY)");
            }
            if (arg(2)) op.affine_scale = parse_scale(ctx, *arg(2));
            if (arg(3)) op.shear = parse_symmetric(ctx, *arg(3), 180.0f, "SHEAR");
            if (arg(4)) op.bilinear = parse_interpolation(ctx, *arg(4));
            if (arg(5)) op.fill = parse_triple(ctx, *arg(5), "FILL", false);
            break;
        case AugmentKind::rotation:
            op.degrees = parse_symmetric(ctx, *arg(0), 360.0f, "DEGREES");
            if (arg(1)) op.bilinear = parse_interpolation(ctx, *arg(1));
            if (arg(2)) op.fill = parse_triple(ctx, *arg(2), "FILL", false);
            break;
        case AugmentKind::centercrop:
            op.size = parse_int(ctx, *arg(0), 1, "SIZE");
            break;
        case AugmentKind::resizedcrop:
            op.size = parse_int(ctx, *arg(0), 1, "SIZE");
            if (arg(1)) {
                op.scale = parse_range(ctx, *arg(1), 0.0f, 1.0f, "SCALE");
                if (!(op.scale.hi > 0.0f)) ctx.fail(*arg(1), "SCALE: LO-HI with 0 <= LO <= HI <= 1, HI > 0");
            }
            if (arg(2)) {
                op.ratio = parse_range(ctx, *arg(2), 0.0f, 1e30f, "RATIO");
                if (!(op.ratio.lo > 0.0f)) ctx.fail(*arg(2), "RATIO: LO-HI with 0 < LO <= HI");
            }
            break;
        case AugmentKind::perspective:
            if (arg(0)) op.distortion_scale = parse_in(ctx, *arg(0), 0.0f, 1.0f, "DISTORTION");
            if (arg(1)) op.p = parse_in(ctx, *arg(1), 0.0f, 1.0f, "P");
            if (arg(2)) op.bilinear = parse_interpolation(ctx, *arg(2));
            if (arg(3)) op.fill = parse_triple(ctx, *arg(3), "FILL", false);
            break;
    }
    return op;
}

const char* mode_name(PadMode mode) {
    switch (mode) {
        case PadMode::constant:
            return "constant";
        case PadMode::edge:
            return "edge";
        case PadMode::reflect:
            return "reflect";
        case PadMode::symmetric:
            return "symmetric";
    }
    return "?";
}

// fmt's "{}" writes the shortest text that reads back as the same float: the round trip is exact.
std::string triple(const std::array<float, 3>& v) {
    if (v[0] == v[1] && v[1] == v[2]) return fmt::format("{}", v[0]);
    return fmt::format("{}/{}/{}", v[0], v[1], v[2]);
}

std::string range(const Range& r) {
    return fmt::format("{}-{}", r.lo, r.hi);
}

}  // namespace

AugmentSpec parse_augment_spec(const std::string& spec) {
    CUDACNN_CHECK(!spec.empty(), "augment spec is empty: accepted OP[,OP...] with OP one of {}", kOpNames);
    AugmentSpec ops;
    const std::vector<std::string> texts = split(spec, ',');
    for (size_t i = 0; i < texts.size(); ++i) {
        const OpContext ctx{spec, texts[i], static_cast<int64_t>(i)};
        if (texts[i].empty()) ctx.fail(texts[i], fmt::format("an op: {}", kOpNames));
        ops.push_back(parse_op(ctx));
    }
    return ops;
}

std::string format_augment_spec(const AugmentSpec& spec) {
    std::string text;
    for (const AugmentOp& op : spec) {
        if (!text.empty()) text += ',';
        switch (op.kind) {
            case AugmentKind::crop:
                text += fmt::format("crop:{}:{}:{}:{}", op.size, op.padding, mode_name(op.padding_mode),
                                    triple(op.fill));
                break;
            case AugmentKind::hflip:
                text += fmt::format("hflip:{}", op.p);
                break;
            case AugmentKind::vflip:
                text += fmt::format("vflip:{}", op.p);
                break;
            case AugmentKind::grayscale:
                text += fmt::format("grayscale:{}", op.p);
                break;
            case AugmentKind::jitter:
                text += fmt::format("jitter:{}:{}:{}:{}", range(op.brightness), range(op.contrast),
                                    range(op.saturation), range(op.hue));
                break;
            case AugmentKind::erasing:
                text += fmt::format("erasing:{}:{}:{}:{}", op.p, range(op.scale), range(op.ratio),
                                    op.random_value ? "random" : triple(op.fill));
                break;
            case AugmentKind::noise:
                text += fmt::format("noise:{}:{}", op.sigma, op.mean);
                break;
            case AugmentKind::saltpepper:
                text += fmt::format("saltpepper:{}:{}", op.amount, op.salt_vs_pepper);
                break;
            case AugmentKind::normalize:
                text += fmt::format("normalize:{}:{}", triple(op.norm_mean), triple(op.norm_std));
                break;
            case AugmentKind::affine:
                text += fmt::format("affine:{}:{}/{}:{}:{}:{}:{}", range(op.degrees), op.translate[0],
                                    op.translate[1], range(op.affine_scale), range(op.shear),
                                    op.bilinear ? "bilinear" : "nearest", triple(op.fill));
                break;
            case AugmentKind::rotation:
                text += fmt::format("rotation:{}:{}:{}", range(op.degrees),
                                    op.bilinear ? "bilinear" : "nearest", triple(op.fill));
                break;
            case AugmentKind::centercrop:
                text += fmt::format("centercrop:{}", op.size);
                break;
            case AugmentKind::resizedcrop:
                text += fmt::format("resizedcrop:{}:{}:{}", op.size, range(op.scale), range(op.ratio));
                break;
            case AugmentKind::perspective:
                text += fmt::format("perspective:{}:{}:{}:{}", op.distortion_scale, op.p,
                                    op.bilinear ? "bilinear" : "nearest", triple(op.fill));
                break;
        }
    }
    return text;
}

AugmentOp default_augment_op(AugmentKind kind) {
    AugmentOp op;
    op.kind = kind;
    if (kind == AugmentKind::grayscale) op.p = 0.1f;  // RandomGrayscale's default
    if (kind == AugmentKind::resizedcrop) {           // RandomResizedCrop's defaults
        op.scale = Range{0.08f, 1.0f};
        op.ratio = Range{3.0f / 4.0f, 4.0f / 3.0f};
    }
    if (kind == AugmentKind::perspective) op.bilinear = true;  // RandomPerspective's default interpolation
    return op;
}

AugmentSpec default_augment_spec() {
    return parse_augment_spec("crop:32:4,hflip");
}

}  // namespace cudacnn::data
