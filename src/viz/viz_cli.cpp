// cudacnn-viz's command line: the subcommand, its flags and positional argument, and what it prints.
#include <ostream>

#include <fmt/format.h>

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
        {"device", 0, "NAME", "auto (cuda when a GPU is there), cuda or cpu"},
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

struct VizOptions {
    std::string command, argument, output, layer, label;
    eval::ModelSource source;
    int64_t max_filters = 64;
    double eps = 0.0;
    bool has_eps = false;
    train::DeviceChoice device = train::DeviceChoice::auto_;
};

VizOptions parse(const train::CommandLine& line) {
    if (line.positionals.empty()) throw UsageError("no command: use filters, activations, feature-maps, curves or adversarial");
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
            bool known = false;
            for (const auto choice : {train::DeviceChoice::auto_, train::DeviceChoice::cuda, train::DeviceChoice::cpu})
                if (v.text == train::device_choice_name(choice)) o.device = choice, known = true;
            if (!known) v.fail("use auto, cuda or cpu");
        }
    }
    const bool needs_model = o.command != "curves";
    if (needs_model && o.source.checkpoint.empty() == o.source.weights.empty())
        throw UsageError(fmt::format("{} needs the model's weights: --checkpoint PATH or --weights FILE.safetensors "
                                     "(one of them)", o.command));
    if (!needs_model && (!o.source.checkpoint.empty() || !o.source.weights.empty()))
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

void run(const VizOptions& o, std::ostream& out) {
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
    const std::vector<float> pixels = load_input_image(o.argument, session.input_shape());
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
    std::string text = "usage: cudacnn-viz COMMAND [ARGUMENT] [flags]\nPictures of a trained model (PNG).\n\nCommands:\n";
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
            "  cudacnn-viz adversarial cat.jpg --eps 8/255 --checkpoint CKPT -o fgsm.png\n";
    return text;
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
