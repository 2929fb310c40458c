// cudacnn-eval's command line: flags, --help, loading the data and the model, and the report.
#include <algorithm>
#include <ostream>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/eval/evaluate.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/train/setup.hpp"
#include "cudacnn/viz/canvas.hpp"
#include "src/train/confusion.hpp"

namespace cudacnn::eval {
namespace {

using train::FlagSpec;
using train::UsageError;

const std::vector<FlagSpec>& eval_flags() {
    static const std::vector<FlagSpec> table = {
        {"checkpoint", 0, "PATH", "a cudacnn-train checkpoint (model, weights and the run's dataset)"},
        {"weights", 0, "FILE.safetensors", "a state_dict (cudacnn-train --export, PyTorch's) ..."},
        {"model", 0, "NAME|FILE.json", "... of this model (default: the file's \"model\" metadata)"},
        {"dataset", 0, "NAME", "cifar10, cifar100, synthetic or folder (DIR/<class>/*.png|jpg; default: the checkpoint's)"},
        {"data", 0, "DIR", "the dataset's folder (default: the checkpoint's)"},
        {"limit", 0, "N", "only the first N test images"},
        {"device", 0, "NAME", "auto (cuda when a GPU is there, else cpu), cuda, cpu or cpu-ref (the reference ops)"},
        {"threads", 0, "N", "threads of the fast CPU path (default 0: one per core)"},
        {"batch-size", 'b', "N", "images per forward pass (default: 128)"},
        {"tta", 0, nullptr, "test-time augmentation: average the logits of views of each image (below)"},
        {"tta-views", 0, "flip|crops|all", "with --tta: the image and its mirror image, the 5 windows, or both (TenCrop's "
                                           "10; default)"},
        {"tta-padding", 0, "P", "with --tta: zeros around the image before the windows are cut (default: 4)"},
        {"fgsm", 0, "EPS", "also report the accuracy under an FGSM attack of size EPS on the [0, 1] pixel scale (8/255 works)"},
        {"logits", 0, "FILE.csv", "write index, label and the logits of every test image"},
        {"confusion", 0, "FILE.png", "draw the confusion matrix as a heat map"},
        {"predict", 0, "IMAGE...", "classify PNG/JPEG files of any size (resized and centre-cropped as the model expects: below)", true},
        {"top-k", 0, "K", "classes shown per predicted image (default: 5)"},
    };
    return table;
}

void validate(const EvalOptions& o, const train::CommandLine& line) {
    if (o.source.checkpoint.empty() == o.source.weights.empty())
        throw UsageError(o.source.checkpoint.empty()
                             ? "give the model's weights: --checkpoint PATH (from cudacnn-train) or --weights "
                               "FILE.safetensors with --model NAME"
                             : "--checkpoint and --weights both given; give one of them");
    if (!o.source.weights.empty() && o.dataset.empty() && o.predict.empty())
        throw UsageError("--weights: a weights file does not say which data it was trained on; add --dataset "
                         "(and --data DIR), or --predict IMAGE...");
    const bool needs_dir = o.dataset == "cifar10" || o.dataset == "cifar100" || o.dataset == "folder" ||
                           o.dataset == "imagefolder";
    if (needs_dir && o.data_dir.empty() && !o.source.weights.empty())
        throw UsageError(fmt::format("--dataset {} needs --data DIR", o.dataset));
    if (o.predict.empty() && line.has("--top-k")) throw UsageError("--top-k goes with --predict IMAGE...");
    if (o.fgsm && o.dataset.empty() && o.source.checkpoint.empty())
        throw UsageError("--fgsm reports the accuracy on a dataset: add --dataset");
    for (const char* flag : {"--tta-views", "--tta-padding"})
        if (line.has(flag) && !line.has("--tta")) throw UsageError(fmt::format("{} goes with --tta", flag));
    if (line.has("--tta-padding") && o.tta.views == TtaViews::flip)
        throw UsageError("--tta-padding goes with the windows (--tta-views crops or all); --tta-views flip cuts none");
}

TtaViews tta_views_choice(const train::FlagValue& v) {
    for (const auto views : {TtaViews::flip, TtaViews::crops, TtaViews::all})
        if (v.text == tta_views_name(views)) return views;
    v.fail("use flip, crops or all");
    return TtaViews::all;
}

// The test split the options name: the checkpoint's run unless --dataset / --data say otherwise.
data::Dataset load_test_set(const EvalOptions& o, const LoadedModel& model) {
    std::string kind = o.dataset, dir = o.data_dir;
    int64_t synthetic_size = 2000;
    uint64_t seed = 0;
    data::Cifar100Labels labels = data::Cifar100Labels::fine;
    if (model.run) {
        if (kind.empty()) kind = model.run->dataset;
        if (dir.empty() && kind == model.run->dataset) dir = model.run->data_dir;
        synthetic_size = model.run->synthetic_test_size;
        seed = model.run->seed;
        if (model.run->cifar100_labels) labels = *model.run->cifar100_labels;  // a coarse run's checkpoint
    }
    data::Dataset test;
    if (kind == "synthetic") {
        test = data::make_synthetic({1, synthetic_size, seed}).test;
    } else if (kind == "cifar10") {
        test = data::load_cifar10(dir).test;
    } else if (kind == "cifar100") {
        test = data::load_cifar100(dir, labels).test;
    } else {
        CUDACNN_CHECK(!dir.empty(), "--dataset {} needs --data DIR", kind);
        const Preprocessing preprocessing = preprocessing_for(model.spec, model.run ? &*model.run : nullptr);
        test = data::load_image_folder(dir, model.spec.input[1], model.spec.input[2],
                                       [&](const data::Image& image) { return preprocessing.apply(image); });
    }
    return o.limit ? test.first(*o.limit) : test;
}

void report_predictions(const std::vector<Prediction>& predictions, const std::vector<std::string>& names,
                        std::ostream& out) {
    for (const Prediction& p : predictions) {
        out << fmt::format("{} ({}x{}):", p.path, p.width, p.height);
        for (std::size_t k = 0; k < p.top.size(); ++k)
            out << fmt::format("{} {}. {} {:.2f}%", k == 0 ? "" : " |", k + 1, names[p.top[k].first],
                               100.0 * p.top[k].second);
        out << "\n";
    }
}

void run_eval(const EvalOptions& o, std::ostream& out) {
    LoadedModel model = load_model(o.source);
    if (o.tta.views == TtaViews::crops || o.tta.views == TtaViews::all)
        check_tta_padding(o.tta.padding, model.spec.input[1], model.spec.input[2]);
    const bool evaluate = o.predict.empty() || !o.dataset.empty() || o.fgsm;
    std::optional<data::Dataset> test;
    if (evaluate) {
        test = load_test_set(o, model);
        train::check_classes(model.spec, *test);
    }
    const std::vector<std::string> names = class_names(model, test ? &*test : nullptr);
    SessionOptions s;
    s.backend = train::choose_backend(o.device);
    s.threads = o.threads;
    // Only predicting: no larger batch than the files (the activations of a 224 x 224 model at batch 128 take GBs).
    s.batch_size = evaluate ? o.batch_size : std::min<int64_t>(o.batch_size, static_cast<int64_t>(o.predict.size()));
    s.input_gradient = o.fgsm.has_value();
    const std::string source = model.source;
    const int64_t epoch = model.epoch;
    Session session(std::move(model), s);
    out << "cudacnn-eval\n";
    out << fmt::format("model: {} ({} parameters) from {}{}\n", session.graph().spec.name,
                       session.graph().trainable_parameter_count(), source,
                       epoch > 0 ? fmt::format(" (epoch {})", epoch) : "");
    out << "device: " << graph::backend_name(s.backend) << "\n";
    if (const std::string note = train::auto_device_note(o.device, s.backend); !note.empty()) out << note << "\n";
    if (!o.predict.empty() || o.dataset == "folder" || o.dataset == "imagefolder")
        out << "preprocessing: " << session.preprocessing().describe() << "\n";
    if (o.tta.views != TtaViews::none) out << describe_tta(o.tta) << "\n";
    if (test) {
        out << fmt::format("dataset: {} ({} images), {} classes\n", test->name, test->size(), test->num_classes);
        out.flush();
        const DatasetResult result = evaluate_dataset(session, *test, o.tta, o.fgsm);
        out << format_result(result, names);
        train::Confusion confusion(test->num_classes);
        confusion.add(result.logits, result.labels.data());
        out << confusion.format(names);
        if (result.fgsm_eps) {
            out << fmt::format("FGSM (eps {:g} = {:.2f}/255): accuracy {:.3f}% ({}/{}), clean {:.3f}%\n",
                               *result.fgsm_eps, *result.fgsm_eps * 255.0,
                               100.0 * result.fgsm_correct / std::max<int64_t>(result.size(), 1), result.fgsm_correct,
                               result.size(), result.accuracy_percent());
        }
        if (!o.logits_path.empty()) {
            write_logits_csv(result, names, o.logits_path);
            out << "logits: " << o.logits_path << "\n";
        }
        if (!o.confusion_path.empty()) {
            const std::string title = fmt::format("{}: {:.2f}% of {} images", session.graph().spec.name,
                                                  result.accuracy_percent(), result.size());
            viz::write_png(viz::heat_map(result.confusion, names, title, "true class", "predicted class"),
                           o.confusion_path);
            out << "confusion matrix: " << o.confusion_path << "\n";
        }
    }
    if (!o.predict.empty()) report_predictions(predict_images(session, o.predict, o.top_k, o.tta), names, out);
}

}  // namespace

ParsedEvalArgs parse_eval_args(const std::vector<std::string>& args) {
    const train::CommandLine line = train::parse_command_line(args, eval_flags(), "cudacnn-eval", false);
    ParsedEvalArgs parsed;
    parsed.help = line.help;
    if (line.help) return parsed;
    EvalOptions& o = parsed.options;
    TtaViews tta_views = TtaViews::all;  // what --tta does unless --tta-views says otherwise
    for (const train::FlagValue& v : line.flags) {
        if (v.flag == "--checkpoint") o.source.checkpoint = v.path();
        else if (v.flag == "--weights") o.source.weights = v.path();
        else if (v.flag == "--model") o.source.model = v.path();
        else if (v.flag == "--dataset") {
            if (v.text != "cifar10" && v.text != "cifar100" && v.text != "synthetic" && v.text != "folder" &&
                v.text != "imagefolder")
                v.fail("use cifar10, cifar100, synthetic or folder (imagefolder, cudacnn-train's name, is the same)");
            o.dataset = v.text;
        } else if (v.flag == "--data") o.data_dir = v.path();
        else if (v.flag == "--limit") o.limit = v.integer(1);
        else if (v.flag == "--device") o.device = train::device_choice(v);
        else if (v.flag == "--batch-size") o.batch_size = v.integer(1);
        else if (v.flag == "--threads") o.threads = static_cast<int>(std::min<int64_t>(v.integer(0), 4096));
        else if (v.flag == "--tta-views") tta_views = tta_views_choice(v);
        else if (v.flag == "--tta-padding") o.tta.padding = v.integer(0);
        else if (v.flag == "--fgsm") {
            o.fgsm = v.real();
            if (*o.fgsm < 0 || *o.fgsm > 1) v.fail("must be in [0, 1], on the [0, 1] pixel scale (e.g. 8/255)");
        } else if (v.flag == "--logits") o.logits_path = v.path();
        else if (v.flag == "--confusion") o.confusion_path = v.path();
        else if (v.flag == "--predict") o.predict.push_back(v.path());
        else if (v.flag == "--top-k") o.top_k = v.integer(1);
    }
    if (line.has("--tta")) o.tta.views = tta_views;
    validate(o, line);
    return parsed;
}

std::string eval_usage() {
    return "usage: cudacnn-eval (--checkpoint PATH | --weights FILE.safetensors [--model NAME]) [flags]\n"
           "Evaluates a trained model on a test set (accuracy, per-class accuracy, confusion matrix) and\n"
           "classifies image files.\n\n" +
           train::flags_help(eval_flags()) +
           "  -h, --help                         show this text and exit\n\n"
           "Images for --predict and --dataset folder become the model's input as its weights expect. For\n"
           "torchvision's architectures (vgg16, vgg16_bn, resnet18, resnet50) as their pretrained weights'\n"
           "transforms(): Resize(256) of the shorter side with PIL's bilinear filter (antialiased), CenterCrop(224),\n"
           "ToTensor and ImageNet's Normalize(mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)); their\n"
           "classes are ImageNet's 1,000 (models/imagenet_classes.txt). For other models: cropped to the largest\n"
           "centred window of the input's aspect ratio, resized to the input with PIL's bilinear filter (antialiased\n"
           "when shrinking), then ToTensor and the checkpoint run's Normalize (else the seed's).\n\n"
           "--tta classifies views of each image and averages their logits: its mirror image, and the windows of\n"
           "the image's size at the four corners and the centre (the image itself) of the image zero-padded by P\n"
           "pixels (0 on the [0, 1] scale, before Normalize, as the training RandomCrop's fill), as torchvision's\n"
           "Pad(P) + TenCrop; a P that leaves a corner window without image pixels is refused.\n\n"
           "Examples:\n"
           "  cudacnn-eval --checkpoint runs/checkpoint-epoch-020.safetensors --confusion confusion.png\n"
           "  cudacnn-eval --weights cnn.safetensors --model cifar_cnn --dataset cifar10 --data DIR --tta --fgsm 8/255\n"
           "  cudacnn-eval --checkpoint runs/checkpoint-epoch-020.safetensors --tta --tta-views flip\n"
           "  cudacnn-eval --checkpoint runs/checkpoint-epoch-020.safetensors --predict cat.jpg dog.png --top-k 3\n"
           "  cudacnn-eval --weights vgg16.safetensors --model vgg16 --predict kitten.jpg\n"
           "    (torchvision's weights converted by tools/torchvision-to-safetensors.py; see the README)\n";
}

int eval_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ParsedEvalArgs parsed;
    return train::program_main(
        "cudacnn-eval", [&] { return !(parsed = parse_eval_args(args)).help; }, eval_usage,
        [&] {
            run_eval(parsed.options, out);
            return 0;
        },
        out, err);
}

}  // namespace cudacnn::eval
