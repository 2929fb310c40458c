// The augmentation spec's JSON form: an array of op objects with torchvision's argument names.
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/json_parse.hpp"

namespace cudacnn::data {

namespace {

using nlohmann::json;

const char* kind_name(AugmentKind kind) {
    switch (kind) {
        case AugmentKind::crop:
            return "crop";
        case AugmentKind::hflip:
            return "hflip";
        case AugmentKind::vflip:
            return "vflip";
        case AugmentKind::jitter:
            return "jitter";
        case AugmentKind::grayscale:
            return "grayscale";
        case AugmentKind::erasing:
            return "erasing";
        case AugmentKind::noise:
            return "noise";
        case AugmentKind::saltpepper:
            return "saltpepper";
        case AugmentKind::normalize:
            return "normalize";
        case AugmentKind::affine:
            return "affine";
        case AugmentKind::rotation:
            return "rotation";
        case AugmentKind::centercrop:
            return "centercrop";
        case AugmentKind::resizedcrop:
            return "resizedcrop";
        case AugmentKind::perspective:
            return "perspective";
    }
    return "?";
}

AugmentKind kind_of(const std::string& name) {
    for (int k = 0; k <= static_cast<int>(AugmentKind::perspective); ++k)
        if (name == kind_name(static_cast<AugmentKind>(k))) return static_cast<AugmentKind>(k);
    return AugmentKind::hflip;  // not reached: callers pass known names
}

json range(const Range& r) {
    return json::array({r.lo, r.hi});
}
json triple(const std::array<float, 3>& v) {
    return json::array({v[0], v[1], v[2]});
}

json op_to_json(const AugmentOp& op) {
    json j = {{"op", kind_name(op.kind)}};
    switch (op.kind) {
        case AugmentKind::crop: {
            static const char* modes[] = {"constant", "edge", "reflect", "symmetric"};
            j["size"] = op.size;
            j["padding"] = op.padding;
            j["padding_mode"] = modes[static_cast<int>(op.padding_mode)];
            j["fill"] = triple(op.fill);
            break;
        }
        case AugmentKind::hflip:
        case AugmentKind::vflip:
        case AugmentKind::grayscale:
            j["p"] = op.p;
            break;
        case AugmentKind::jitter:
            j["brightness"] = range(op.brightness);
            j["contrast"] = range(op.contrast);
            j["saturation"] = range(op.saturation);
            j["hue"] = range(op.hue);
            break;
        case AugmentKind::erasing:
            j["p"] = op.p;
            j["scale"] = range(op.scale);
            j["ratio"] = range(op.ratio);
            j["value"] = op.random_value ? json("random") : triple(op.fill);
            break;
        case AugmentKind::noise:
            j["sigma"] = op.sigma;
            j["mean"] = op.mean;
            break;
        case AugmentKind::saltpepper:
            j["amount"] = op.amount;
            j["salt_vs_pepper"] = op.salt_vs_pepper;
            break;
        case AugmentKind::normalize:
            j["mean"] = triple(op.norm_mean);
            j["std"] = triple(op.norm_std);
            break;
        case AugmentKind::affine:
            j["degrees"] = range(op.degrees);
            j["translate"] = json::array({op.translate[0], op.translate[1]});
            j["scale"] = range(op.affine_scale);
            j["shear"] = range(op.shear);
            j["interpolation"] = op.bilinear ? "bilinear" : "nearest";
            j["fill"] = triple(op.fill);
            break;
        case AugmentKind::rotation:
            j["degrees"] = range(op.degrees);
            j["interpolation"] = op.bilinear ? "bilinear" : "nearest";
            j["fill"] = triple(op.fill);
            break;
        case AugmentKind::centercrop:
            j["size"] = op.size;
            break;
        case AugmentKind::resizedcrop:
            j["size"] = op.size;
            j["scale"] = range(op.scale);
            j["ratio"] = range(op.ratio);
            break;
        case AugmentKind::perspective:
            j["distortion_scale"] = op.distortion_scale;
            j["p"] = op.p;
            j["interpolation"] = op.bilinear ? "bilinear" : "nearest";
            j["fill"] = triple(op.fill);
            break;
    }
    return j;
}

// JSON values become the text grammar's tokens, so both forms share one parser and one set of checks.
// A pair is a range LO-HI, except translate's (TX/TY).
std::string token(const json& value, const std::string& where, bool pair_is_tuple = false) {
    auto number = [&](const json& v) -> std::string {
        CUDACNN_CHECK(v.is_number(), "augment JSON {}: {} is not a number", where, v.dump());
        return fmt::format("{}", v.get<double>());
    };
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number()) return number(value);
    CUDACNN_CHECK(value.is_array() && (value.size() == 2 || value.size() == 3),
                  "augment JSON {}: {} must be a number, a string, [lo, hi] or [a, b, c]", where,
                  value.dump());
    if (value.size() == 2) return number(value[0]) + (pair_is_tuple ? "/" : "-") + number(value[1]);
    return number(value[0]) + "/" + number(value[1]) + "/" + number(value[2]);
}

std::string op_to_text(const json& j, size_t index) {
    const std::string where = fmt::format("op {} {}", index, j.dump());
    CUDACNN_CHECK(j.is_object() && j.contains("op") && j["op"].is_string(),
                  "augment JSON {}: each op must be an object with a string \"op\"", where);
    const std::string name = j["op"].get<std::string>();
    static const std::pair<const char*, std::vector<const char*>> keys[] = {
        {"crop", {"size", "padding", "padding_mode", "fill"}},
        {"hflip", {"p"}},
        {"vflip", {"p"}},
        {"grayscale", {"p"}},
        {"jitter", {"brightness", "contrast", "saturation", "hue"}},
        {"erasing", {"p", "scale", "ratio", "value"}},
        {"noise", {"sigma", "mean"}},
        {"saltpepper", {"amount", "salt_vs_pepper"}},
        {"normalize", {"mean", "std"}},
        {"affine", {"degrees", "translate", "scale", "shear", "interpolation", "fill"}},
        {"rotation", {"degrees", "interpolation", "fill"}},
        {"centercrop", {"size"}},
        {"resizedcrop", {"size", "scale", "ratio"}},
        {"perspective", {"distortion_scale", "p", "interpolation", "fill"}}};
    for (const auto& [kind, names] : keys) {
        if (name != kind) continue;
        for (const auto& item : j.items()) {
            if (item.key() == "op") continue;
            bool known = false;
            for (const char* k : names) known = known || item.key() == k;
            CUDACNN_CHECK(known, "augment JSON {}: unknown key \"{}\" for {}; accepted: {}", where,
                          item.key(), name, fmt::join(names, ", "));
        }
        // Positional text: a missing key takes default_augment_op's value, except the sizes, normalize's mean
        // and std and the degrees, which have none.
        const json fallback = op_to_json(default_augment_op(kind_of(name)));
        std::string text = name;
        for (const char* k : names) {
            const std::string key = k;
            const bool required = (key == "size") || name == "normalize" || key == "degrees";
            CUDACNN_CHECK(j.contains(key) || !required, "augment JSON {}: missing \"{}\" (required for {})",
                          where, key, name);
            text += ":" + token(j.contains(key) ? j[key] : fallback[key], where + " key \"" + key + "\"",
                                key == "translate");
        }
        return text;
    }
    CUDACNN_FAIL(
        "augment JSON {}: unknown op \"{}\"; accepted: crop, hflip, vflip, jitter, grayscale, erasing, "
        "noise, saltpepper, normalize, affine, rotation, centercrop, resizedcrop, perspective",
        where, name);
}

}  // namespace

json augment_spec_to_json(const AugmentSpec& spec) {
    json j = json::array();
    for (const AugmentOp& op : spec) j.push_back(op_to_json(op));
    return j;
}

AugmentSpec augment_spec_from_json(const json& j) {
    CUDACNN_CHECK(j.is_array() && !j.empty(), "augment JSON: expected a non-empty array of ops, got {}",
                  j.dump());
    std::string text;
    for (size_t i = 0; i < j.size(); ++i) text += (i ? "," : "") + op_to_text(j[i], i);
    return parse_augment_spec(text);
}

AugmentSpec read_augment_spec(const std::string& text_or_path) {
    const std::string suffix = ".json";
    const bool is_file = text_or_path.size() > suffix.size() &&
                         text_or_path.compare(text_or_path.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (!is_file) return parse_augment_spec(text_or_path);
    std::ifstream file(text_or_path);
    CUDACNN_CHECK(file.good(), "cannot open the file; give an existing FILE.json (a JSON array of ops), or a spec "
                               "such as crop:32:4,hflip");
    json parsed;
    try {
        parsed = parse_json_limited(text_or_path, file);
    } catch (const json::exception& e) {
        CUDACNN_FAIL("the file is not valid JSON: {}", e.what());
    }
    return augment_spec_from_json(parsed);
}

}  // namespace cudacnn::data
