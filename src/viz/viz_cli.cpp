// cudacnn-viz's command line: the subcommand, its flags and positional argument, and what it prints.
#include <algorithm>
#include <fstream>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error_text.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/train/setup.hpp"
#include "cudacnn/viz/commands.hpp"

namespace cudacnn::viz {
namespace {

using train::FlagSpec;
using train::UsageError;

struct Command {
    const char* name;
    const char* argument;  // the positional argument's name, or nullptr
    const char* help;
};

const std::vector<Command>& commands() {
    static const std::vector<Command> list = {
        {"filters", nullptr, "a conv layer's kernels as a grid (--layer NAME; default: the first conv layer)"},
        {"activations", "IMAGE", "the mean over channels of every layer's output for one image"},
        {"feature-maps", "IMAGE", "every channel of one layer's output (--layer NAME) for one image"},
        {"curves", "METRICS", "loss and accuracy per epoch from a cudacnn-train --metrics file (.csv or .jsonl)"},
        {"adversarial", "IMAGE", "an FGSM example (--eps E): original, perturbation and perturbed image, predicted"},
        {"augment", nullptr, "samples beside augmented versions (--augment SPEC; --images FILE... or --dataset NAME)"},
    };
    return list;
}

const std::vector<FlagSpec>& viz_flags() {
    static const std::vector<FlagSpec> table = {
        {"checkpoint", 0, "PATH", "a cudacnn-train checkpoint"},
        {"weights", 0, "FILE.safetensors", "a state_dict (cudacnn-train --export, PyTorch's) ..."},
        {"model", 0, "NAME|FILE.json", "... of this model (default: the file's \"model\" metadata)"},
        {"output", 'o', "FILE.png", "where the picture goes (default: COMMAND.png)"},
        {"layer", 0, "NAME", "the layer of filters and feature-maps (e.g. conv_layer.3)"},
        {"max-filters", 0, "N", "filters: at most N filters (default: 64)"},
        {"eps", 0, "E", "adversarial: the FGSM step on the [0, 1] pixel scale (e.g. 0.03 or 8/255)"},
        {"label", 0, "CLASS", "adversarial: the true class (name or index; default: the model's prediction)"},
        {"device", 0, "NAME", "auto (cuda when a GPU is there, else cpu), cuda, cpu or cpu-ref (the reference ops)"},
        {"augment", 0, "SPEC|FILE.json", "augment: the transform (default crop:32:4,hflip; see README)"},
        {"images", 0, "FILE...", "augment: PNG/JPEG files to show, fitted to --size", true},
        {"dataset", 0, "NAME", "augment: cifar10 (with --data DIR) or synthetic: its first training images"},
        {"data", 0, "DIR", "augment: the CIFAR-10 binary version's folder"},
        {"samples", 0, "N", "augment: rows, one sample each (default: 8)"},
        {"columns", 0, "M", "augment: versions per row; version j is epoch j's draw (default: 8)"},
        {"seed", 0, "N", "augment: the training run's seed (default: 0)"},
        {"scale", 0, "K", "augment: screen pixels per image pixel (default: 4)"},
        {"size", 0, "S", "augment: --images are fitted to S x S (default: 32)"},
    };
    return table;
}

const Command& find_command(const std::string& name) {
    std::string names;
    for (const Command& c : commands()) {
        if (name == c.name) return c;
        names += (names.empty() ? "" : ", ") + std::string(c.name);
    }
    throw UsageError(fmt::format("unknown command '{}': use {} (cudacnn-viz --help)", name, names));
}

// The flags of the augment command only.
const std::vector<std::string> kAugmentFlags = {"--augment", "--images", "--dataset", "--data", "--samples",
                                                "--columns", "--seed",    "--scale",   "--size"};

struct AugmentOptions {
    std::string spec_text = "crop:32:4,hflip";  // as given: the picture's title
    data::AugmentSpec spec;
    std::vector<std::string> images;
    std::string dataset, data_dir;
    int64_t samples = 8, columns = 8, scale = 4, size = 32;
    bool has_samples = false;
    uint64_t seed = 0;
};

struct VizOptions {
    std::string command, argument, output, layer, label;
    eval::ModelSource source;
    int64_t max_filters = 64;
    double eps = 0.0;
    bool has_eps = false;
    train::DeviceChoice device = train::DeviceChoice::auto_;
    AugmentOptions augment;
};

// An integer flag in [min, max] (the maxima keep the picture's memory sane).
int64_t bounded(const train::FlagValue& v, int64_t min, int64_t max) {
    const int64_t value = v.integer(min);
    if (value > max) v.fail(fmt::format("must be at most {}", max));
    return value;
}

// --augment's value: the text grammar of data/augment.hpp, or a file ending in ".json" holding the JSON form
// (as cudacnn-train reads it). Every problem is a usage error naming the flag's value and the bad token or key.
data::AugmentSpec read_augment_flag(const std::string& value) {
    try {
        return data::read_augment_spec(value);
    } catch (const Error& e) {
        throw UsageError(fmt::format("--augment {}: {}", value, without_location(e)));
    }
}

// The augment command's flags, read and checked together; the spec is parsed here so that a bad one is a
// usage error.
void parse_augment(const train::CommandLine& line, AugmentOptions& a) {
    for (const train::FlagValue& v : line.flags) {
        if (v.flag == "--augment") a.spec_text = v.path();
        else if (v.flag == "--images") a.images.push_back(v.path());
        else if (v.flag == "--data") a.data_dir = v.path();
        else if (v.flag == "--samples") a.samples = bounded(v, 1, 256), a.has_samples = true;
        else if (v.flag == "--columns") a.columns = bounded(v, 1, 64);
        else if (v.flag == "--scale") a.scale = bounded(v, 1, 32);
        else if (v.flag == "--size") a.size = bounded(v, 1, 1024);
        else if (v.flag == "--seed") a.seed = static_cast<uint64_t>(v.integer(0));
        else if (v.flag == "--dataset") {
            if (v.text != "cifar10" && v.text != "synthetic") v.fail("use cifar10 (with --data DIR) or synthetic");
            a.dataset = v.text;
        }
    }
    a.spec = read_augment_flag(a.spec_text);
    if (a.images.empty() == a.dataset.empty())
        throw UsageError("augment needs its images: --images FILE... or --dataset cifar10|synthetic (one of them)");
    if (a.dataset == "cifar10" && a.data_dir.empty())
        throw UsageError("--dataset cifar10 needs --data DIR, the folder of the CIFAR-10 binary version "
                         "(cifar-10-batches-bin)");
    if (!a.data_dir.empty() && a.dataset != "cifar10") throw UsageError("--data goes with --dataset cifar10");
    if (a.images.empty() && line.has("--size")) throw UsageError("--size goes with --images");
}

void reject_augment_flags(const train::CommandLine& line, const std::string& command) {
    for (const std::string& flag : kAugmentFlags)
        if (line.has(flag)) throw UsageError(fmt::format("{} goes with the augment command, not {}", flag, command));
}

VizOptions parse(const train::CommandLine& line) {
    if (line.positionals.empty())
        throw UsageError("no command: use filters, activations, feature-maps, curves, adversarial or augment");
    VizOptions o;
    const Command& command = find_command(line.positionals[0]);
    o.command = command.name;
    const std::size_t wanted = command.argument != nullptr ? 2 : 1;
    if (line.positionals.size() < wanted)
        throw UsageError(fmt::format("{} needs {}: cudacnn-viz {} {}", o.command, command.argument, o.command, command.argument));
    if (line.positionals.size() > wanted)
        throw UsageError(fmt::format("{}: unexpected argument '{}'", o.command, line.positionals[wanted]));
    if (wanted == 2) o.argument = line.positionals[1];
    o.output = o.command + ".png";
    for (const train::FlagValue& v : line.flags) {
        if (v.flag == "--checkpoint") o.source.checkpoint = v.path();
        else if (v.flag == "--weights") o.source.weights = v.path();
        else if (v.flag == "--model") o.source.model = v.path();
        else if (v.flag == "--output") o.output = v.path();
        else if (v.flag == "--layer") o.layer = v.path();
        else if (v.flag == "--max-filters") o.max_filters = v.integer(1);
        else if (v.flag == "--label") o.label = v.path();
        else if (v.flag == "--eps") {
            o.eps = v.real();
            o.has_eps = true;
            if (o.eps < 0 || o.eps > 1) v.fail("must be in [0, 1], on the [0, 1] pixel scale (e.g. 8/255)");
        } else if (v.flag == "--device") {
            o.device = train::device_choice(v);
        }
    }
    if (o.command == "augment") {
        if (!o.source.checkpoint.empty() || !o.source.weights.empty() || !o.source.model.empty())
            throw UsageError("augment draws no model; drop --checkpoint / --weights / --model");
        parse_augment(line, o.augment);
    } else {
        reject_augment_flags(line, o.command);
    }
    const bool needs_model = o.command != "curves" && o.command != "augment";
    if (needs_model && o.source.checkpoint.empty() == o.source.weights.empty())
        throw UsageError(fmt::format("{} needs the model's weights: --checkpoint PATH or --weights FILE.safetensors "
                                     "(one of them)", o.command));
    if (o.command == "curves" && (!o.source.checkpoint.empty() || !o.source.weights.empty()))
        throw UsageError("curves reads only the metrics file; drop --checkpoint / --weights");
    if (o.command == "feature-maps" && o.layer.empty())
        throw UsageError("feature-maps needs --layer NAME (e.g. conv_layer.0)");
    if (o.command == "adversarial" && !o.has_eps) throw UsageError("adversarial needs --eps E (e.g. 8/255)");
    if (o.command != "adversarial" && (o.has_eps || !o.label.empty()))
        throw UsageError("--eps and --label go with the adversarial command");
    if (!o.layer.empty() && o.command != "filters" && o.command != "feature-maps")
        throw UsageError("--layer goes with filters and feature-maps");
    return o;
}

// --label as a class name or index.
int64_t label_index(const std::string& label, const std::vector<std::string>& names) {
    for (std::size_t c = 0; c < names.size(); ++c)
        if (names[c] == label) return static_cast<int64_t>(c);
    int64_t index = -1;
    try {
        std::size_t used = 0;
        index = std::stoll(label, &used);
        if (used != label.size()) index = -1;
    } catch (const std::exception&) {
        index = -1;
    }
    CUDACNN_CHECK(index >= 0 && index < static_cast<int64_t>(names.size()),
                  "--label {}: not a class of the model; use a name ({}, ...) or an index 0 to {}", label, names[0],
                  names.size() - 1);
    return index;
}

void run_augment(const AugmentOptions& a, const std::string& output, std::ostream& out) {
    std::vector<AugmentSample> samples;
    if (a.dataset == "synthetic") {
        samples = augment_samples(data::make_synthetic({a.samples, 0, a.seed}).train, a.samples);
    } else if (a.dataset == "cifar10") {
        samples = augment_samples(data::load_cifar10(a.data_dir).train, a.samples);
    } else {
        std::vector<std::string> paths = a.images;
        if (a.has_samples && static_cast<int64_t>(paths.size()) > a.samples) paths.resize(static_cast<std::size_t>(a.samples));
        samples = augment_samples(paths, a.size);
    }
    write_png(augment_picture(samples, a.spec, a.columns, a.seed, static_cast<int>(a.scale), a.spec_text), output);
    out << fmt::format("augment: {} sample{} x {} versions (version j: epoch j of seed {}) of {}\n", samples.size(),
                       samples.size() == 1 ? "" : "s", a.columns, a.seed, data::format_augment_spec(a.spec));
    const bool normalizes = std::any_of(a.spec.begin(), a.spec.end(),
                                        [](const data::AugmentOp& op) { return op.kind == data::AugmentKind::normalize; });
    if (normalizes) out << "augment: normalize ops skipped for display (the picture shows values in [0, 1])\n";
    out << "augment: " << output << "\n";
}

void run(const VizOptions& o, std::ostream& out) {
    if (o.command == "augment") return run_augment(o.augment, o.output, out);
    if (o.command == "curves") {
        write_png(curves_picture(o.argument), o.output);
        out << "curves: " << o.output << "\n";
        return;
    }
    eval::LoadedModel model = eval::load_model(o.source);
    if (o.command == "filters") {
        write_png(filters_picture(model, o.layer, o.max_filters), o.output);
        out << "filters: " << o.output << "\n";
        return;
    }
    const std::vector<std::string> names = eval::class_names(model, nullptr);
    eval::SessionOptions s;
    s.backend = train::choose_backend(o.device);
    s.batch_size = 1;
    s.keep_activations = o.command != "adversarial";
    s.input_gradient = o.command == "adversarial";
    eval::Session session(std::move(model), s);
    const std::vector<float> pixels = load_input_image(o.argument, session.preprocessing());
    if (o.command == "activations") {
        write_png(activations_picture(session, pixels), o.output);
    } else if (o.command == "feature-maps") {
        write_png(feature_maps_picture(session, pixels, o.layer), o.output);
    } else {
        const int64_t label = o.label.empty() ? -1 : label_index(o.label, names);
        const AdversarialResult r = adversarial_picture(session, pixels, o.eps, label, names);
        write_png(r.picture, o.output);
        out << fmt::format("{}: {} {:.2f}% -> FGSM eps {:g}: {} {:.2f}%\n", o.argument, names[r.original_class],
                           100.0 * r.original_probability, o.eps, names[r.adversarial_class],
                           100.0 * r.adversarial_probability);
    }
    out << o.command << ": " << o.output << "\n";
}

}  // namespace

std::string viz_usage() {
    std::string text = "usage: cudacnn-viz COMMAND [ARGUMENT] [flags]\nPictures of a trained model and of the augmentation pipeline (PNG).\n\nCommands:\n";
    for (const Command& c : commands())
        text += fmt::format("  {:<34} {}\n", std::string(c.name) + (c.argument ? std::string(" ") + c.argument : ""), c.help);
    text += "\nFlags:\n" + train::flags_help(viz_flags()) +
            "  -h, --help                         show this text and exit\n\n"
            "IMAGE is a PNG or JPEG file of any size: cropped to the largest centred square and resized bilinearly\n"
            "(as cudacnn-eval --predict does).\n\n"
            "Examples:\n"
            "  cudacnn-viz filters --checkpoint runs/checkpoint-epoch-020.safetensors -o filters.png\n"
            "  cudacnn-viz feature-maps cat.jpg --layer conv_layer.0 --checkpoint CKPT -o maps.png\n"
            "  cudacnn-viz curves runs/metrics.csv -o curves.png\n"
            "  cudacnn-viz adversarial cat.jpg --eps 8/255 --checkpoint CKPT -o fgsm.png\n"
            "  cudacnn-viz augment --images cat.jpg dog.png --augment crop:32:4:reflect,hflip,jitter:0.4 -o aug.png\n"
            "  cudacnn-viz augment --dataset cifar10 --data cifar-10-batches-bin --augment spec.json -o aug.png\n";
    return text;
}

void check_viz_args(const std::vector<std::string>& args) {
    const train::CommandLine line = train::parse_command_line(args, viz_flags(), "cudacnn-viz", true);
    if (!line.help) (void)parse(line);
}

int viz_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    VizOptions options;
    const auto parse_args = [&] {
        const train::CommandLine line = train::parse_command_line(args, viz_flags(), "cudacnn-viz", true);
        if (line.help) return false;
        options = parse(line);
        return true;
    };
    return train::program_main(
        "cudacnn-viz", parse_args, viz_usage,
        [&] {
            run(options, out);
            return 0;
        },
        out, err);
}

}  // namespace cudacnn::viz
