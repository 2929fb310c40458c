// Tests of cudacnn-train's command line: defaults, each flag in both spellings, each error, JSON, lr
// schedules.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/train/options.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::train;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Args = std::vector<std::string>;

namespace {

TrainOptions parse(const Args& args) {
    return parse_train_args(args).options;
}

// The message of the UsageError that parsing args throws, or a text no matcher expects.
std::string usage_error(const Args& args) {
    try {
        parse_train_args(args);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no UsageError thrown)";
}

std::string joined(const Args& args) {
    std::string out;
    for (const std::string& arg : args) out += arg + " ";
    return out;
}

}  // namespace

TEST_CASE("no flags give the documented defaults", "[options]") {
    const ParsedArgs parsed = parse_train_args({});
    CHECK_FALSE(parsed.help);
    const TrainOptions& o = parsed.options;
    CHECK(o.model == "cifar_cnn");
    CHECK(o.dataset == "synthetic");
    CHECK(o.data_dir.empty());
    CHECK(o.epochs == 20);
    CHECK(o.batch_size == 128);
    CHECK(o.lr == 1e-4);
    CHECK(o.optimizer == OptimizerKind::adam);
    CHECK(o.momentum == 0.0);
    CHECK_FALSE(o.weight_decay.has_value());
    CHECK(effective_weight_decay(o) == 0.0);
    CHECK(o.lr_schedule.spec.kind == cpu::LrScheduleKind::none);
    CHECK(o.label_smoothing == 0.0);
    CHECK(o.seed == 0);
    CHECK(o.device == DeviceChoice::auto_);
    CHECK(o.conv_algo == "auto");
    CHECK(o.output_dir == "runs");
    CHECK(o.save_every == 20);
    CHECK(o.resume.empty());
    CHECK_FALSE(o.evaluate_only);
    CHECK_FALSE(o.limit_train.has_value());
    CHECK_FALSE(o.limit_test.has_value());
    CHECK((o.augment && o.dropout && o.shuffle));
    CHECK(o.init_weights.empty());
    CHECK(o.export_path.empty());
    CHECK(o.metrics_path.empty());
    CHECK(o.synthetic_train_size == 10000);
    CHECK(o.synthetic_test_size == 2000);
    CHECK(o.log_every == 0);
}

TEST_CASE("-h and --help anywhere ask for help without checking the rest", "[options]") {
    CHECK(parse_train_args({"-h"}).help);
    CHECK(parse_train_args({"--epochs", "abc", "--help"}).help);
    CHECK(parse_train_args({"--help"}).options.epochs == 20);
}

// One valued flag: a value and what the options must hold after it (with the flags it needs beside it).
struct FlagCase {
    std::string flag, value;
    std::function<bool(const TrainOptions&)> holds;
    Args beside = {};
};

const std::vector<FlagCase>& valued_flags() {
    static const std::vector<FlagCase> cases = {
        {"--model", "models/wide.json", [](const TrainOptions& o) { return o.model == "models/wide.json"; }},
        {"--dataset",
         "cifar100",
         [](const TrainOptions& o) { return o.dataset == "cifar100"; },
         {"--data", "d"}},
        {"--dataset",
         "imagefolder",
         [](const TrainOptions& o) { return o.dataset == "imagefolder"; },
         {"--data", "photos"}},
        {"--cifar100-labels",
         "coarse",
         [](const TrainOptions& o) { return o.cifar100_labels == data::Cifar100Labels::coarse; },
         {"--dataset", "cifar100", "--data", "d"}},
        {"--augment", "crop:32:4,hflip,jitter:0.4",
         [](const TrainOptions& o) {
             return o.augment_spec == "crop:32:4:constant:0,hflip:0.5,jitter:0.6-1.4:1-1:1-1:0-0";
         }},
        {"--data", "/data/cifar-10-batches-bin",
         [](const TrainOptions& o) { return o.data_dir == "/data/cifar-10-batches-bin"; }},
        {"--epochs", "7", [](const TrainOptions& o) { return o.epochs == 7; }},
        {"--batch-size", "64", [](const TrainOptions& o) { return o.batch_size == 64; }},
        {"--lr", "3e-3", [](const TrainOptions& o) { return o.lr == 3e-3; }},
        {"--optimizer", "adamw",
         [](const TrainOptions& o) {
             return o.optimizer == OptimizerKind::adamw && effective_weight_decay(o) == 0.01;
         }},
        {"--momentum",
         "0.9",
         [](const TrainOptions& o) { return o.momentum == 0.9; },
         {"--optimizer", "sgd"}},
        {"--weight-decay", "5e-4", [](const TrainOptions& o) { return o.weight_decay == 5e-4; }},
        {"--lr-schedule",
         "step:30:0.5",
         [](const TrainOptions& o) {
             const cpu::LrSchedule& s = o.lr_schedule.spec;
             return s.kind == cpu::LrScheduleKind::step && s.step.step_size == 30 && s.step.gamma == 0.5;
         },
         {"--epochs", "90"}},
        {"--label-smoothing", "0.1", [](const TrainOptions& o) { return o.label_smoothing == 0.1; }},
        {"--seed", "18446744073709551615",
         [](const TrainOptions& o) { return o.seed == 18446744073709551615ull; }},
        {"--device", "cpu", [](const TrainOptions& o) { return o.device == DeviceChoice::cpu; }},
        {"--conv-algo", "im2col", [](const TrainOptions& o) { return o.conv_algo == "im2col"; }},
        {"--precision", "tf32", [](const TrainOptions& o) { return o.precision == "tf32"; }},
        {"--precision", "bf16", [](const TrainOptions& o) { return o.precision == "bf16"; }},
        {"--memory-format", "nhwc", [](const TrainOptions& o) { return o.memory_format == "nhwc"; }},
        {"--gemm", "own", [](const TrainOptions& o) { return o.gemm == "own"; }},
        {"--output-dir", "out/run1", [](const TrainOptions& o) { return o.output_dir == "out/run1"; }},
        {"--save-every", "0", [](const TrainOptions& o) { return o.save_every == 0; }},
        {"--resume", "runs/epoch_10.ckpt",
         [](const TrainOptions& o) { return o.resume == "runs/epoch_10.ckpt"; }},
        {"--limit-train", "500", [](const TrainOptions& o) { return o.limit_train == 500; }},
        {"--limit-test", "100", [](const TrainOptions& o) { return o.limit_test == 100; }},
        {"--init-weights", "w.safetensors",
         [](const TrainOptions& o) { return o.init_weights == "w.safetensors"; }},
        {"--export", "final.safetensors",
         [](const TrainOptions& o) { return o.export_path == "final.safetensors"; }},
        {"--export-dtype", "bf16", [](const TrainOptions& o) { return o.export_dtype == "bf16"; }},
        {"--metrics", "log.csv",
         [](const TrainOptions& o) {
             return o.metrics_path == "log.csv" && o.metrics_format == MetricsFormat::csv;
         }},
        {"--metrics", "log.jsonl",
         [](const TrainOptions& o) { return o.metrics_format == MetricsFormat::jsonl; }},
        {"--metrics", "log.json",
         [](const TrainOptions& o) { return o.metrics_format == MetricsFormat::jsonl; }},
        {"--synthetic-size", "300,40",
         [](const TrainOptions& o) { return o.synthetic_train_size == 300 && o.synthetic_test_size == 40; }},
        {"--log-every", "50", [](const TrainOptions& o) { return o.log_every == 50; }},
    };
    return cases;
}

TEST_CASE("every valued flag takes '--flag value' and '--flag=value'", "[options]") {
    for (const FlagCase& c : valued_flags()) {
        Args separate = c.beside, joined_form = c.beside;
        separate.insert(separate.end(), {c.flag, c.value});
        joined_form.push_back(c.flag + "=" + c.value);
        INFO(joined(separate));
        CHECK(c.holds(parse(separate)));
        CHECK(c.holds(parse(joined_form)));
        CHECK_FALSE(c.holds(TrainOptions{}));  // the case tests a change from the default
    }
}

TEST_CASE("-b takes its value apart or attached, and negative numbers are values", "[options]") {
    CHECK(parse({"-b", "64"}).batch_size == 64);
    CHECK(parse({"-b64"}).batch_size == 64);
    CHECK(parse({"--batch-size", "32", "-b16"}).batch_size == 16);  // the last one wins
    CHECK_THAT(usage_error({"-b", "-5"}), Contains("--batch-size -5: must be at least 1"));
}

TEST_CASE("switches take no value and turn their setting over", "[options]") {
    const TrainOptions o =
        parse({"--no-augment", "--no-dropout", "--no-shuffle", "--no-cuda-graph", "--evaluate", "--epochs", "0",
               "--init-weights", "w.safetensors"});
    CHECK_FALSE(o.augment);
    CHECK_FALSE(o.cuda_graph);
    CHECK(parse({}).cuda_graph);
    CHECK(parse({"--cudnn-benchmark"}).cudnn_benchmark);
    CHECK_FALSE(parse({}).cudnn_benchmark);
    CHECK(parse({}).cudnn_workspace_mib == -1);  // auto
    CHECK(parse({"--cudnn-workspace-mib", "4096"}).cudnn_workspace_mib == 4096);
    CHECK(parse({"--cudnn-workspace-mib", "4096", "--cudnn-workspace-mib", "auto"}).cudnn_workspace_mib == -1);
    CHECK(to_json(parse({})).at("cudnn_workspace_mib") == "auto");
    CHECK(options_from_json(to_json(parse({"--cudnn-workspace-mib", "64"}))).cudnn_workspace_mib == 64);
    CHECK(options_from_json(to_json(parse({}))).cudnn_workspace_mib == -1);
    CHECK(graph::cudnn_workspace_limit_from_mib(-1) == graph::kCudnnWorkspaceAuto);
    CHECK(graph::cudnn_workspace_limit_from_mib(0) == 0);
    CHECK(graph::cudnn_workspace_limit_from_mib(3) == size_t{3} << 20);
    CHECK_FALSE(o.dropout);
    CHECK_FALSE(o.shuffle);
    CHECK(o.evaluate_only);
    CHECK(o.epochs == 0);
    CHECK(parse({"--evaluate", "--resume", "last.safetensors"}).epochs == 20);
}

TEST_CASE("--help lists every flag with its default, the schedules and examples", "[options]") {
    const std::string help = train_usage();
    for (const FlagCase& c : valued_flags()) CHECK_THAT(help, Contains(c.flag));
    for (const char* flag :
         {"-b, --batch-size N", "--no-augment", "--no-dropout", "--no-shuffle", "--no-cuda-graph", "--evaluate",
          "-h, --help"})
        CHECK_THAT(help, Contains(flag));
    CHECK_THAT(help, Contains("images per step (default: 128)"));
    CHECK_THAT(help, Contains("(default: 0.0001)"));
    CHECK_THAT(help, Contains("(default: cifar_cnn)"));
    CHECK_THAT(help, Contains("(default: 10000,2000)"));
    for (const char* schedule :
         {"none", "constant[:FACTOR[:ITERS]]", "step:STEP_SIZE[:GAMMA]", "multistep:E1,E2,...[:GAMMA]",
          "cosine[:T_MAX[:ETA_MIN]]", "one_cycle[:PCT_START[:cos|linear]]"})
        CHECK_THAT(help, Contains(schedule));
    CHECK_THAT(help, Contains("Examples:"));
    // The data options: an --augment example, the pointer to README, the image folder layout.
    CHECK_THAT(help, Contains("--augment SPEC|FILE.json"));
    CHECK_THAT(help, Contains("--augment crop:32:4:reflect,hflip,jitter:0.4:0.4:0.4,erasing:0.25"));
    CHECK_THAT(help, Contains("README.md, section \"Data augmentation\""));
    CHECK_THAT(help, Contains("--cifar100-labels KIND"));
    CHECK_THAT(help, Contains("Image folders (--dataset imagefolder --data DIR)"));
    CHECK_THAT(help, Contains("DIR/train and DIR/test"));
}

TEST_CASE("each bad command line names the flag, the value and what is accepted", "[options]") {
    struct ErrorCase {
        Args args;
        std::vector<std::string> says;
    };
    const std::vector<ErrorCase> cases = {
        {{"--lrr", "1e-3"}, {"unknown flag '--lrr'; did you mean '--lr'?", "--help"}},
        {{"--lrr=1e-3"}, {"unknown flag '--lrr'; did you mean '--lr'?"}},
        {{"-lr", "1e-3"}, {"unknown flag '-lr'; did you mean '--lr'?"}},
        {{"--batchsize", "8"}, {"did you mean '--batch-size'?"}},
        {{"--epochs"}, {"--epochs needs a value: --epochs N"}},
        {{"--epochs", "--lr", "1"}, {"--epochs needs a value"}},
        {{"--data="}, {"--data needs a value: --data DIR"}},
        {{"--epochs", "abc"}, {"--epochs abc: not a whole number"}},
        {{"--precision", "fp16"}, {"--precision fp16", "fp32", "tf32", "bf16"}},
        {{"--memory-format", "channels_last"}, {"--memory-format channels_last", "nchw", "nhwc"}},
        {{"--gemm", "blas"}, {"--gemm blas", "auto", "own", "cublas"}},
        {{"--epochs", "12x"}, {"--epochs 12x: not a whole number"}},
        {{"--epochs", "2.5"}, {"--epochs 2.5: not a whole number"}},
        {{"--epochs", " 3"}, {"not a whole number"}},
        {{"--epochs", "99999999999999999999"}, {"--epochs 99999999999999999999", "out of range"}},
        {{"--epochs", "0"}, {"--epochs 0: must be at least 1", "--evaluate"}},
        {{"--epochs", "-1", "--evaluate", "--resume", "c.safetensors"}, {"--epochs -1: must be at least 0"}},
        {{"-b0"}, {"--batch-size 0: must be at least 1"}},
        {{"--lr", "0"}, {"--lr 0: must be > 0"}},
        {{"--lr", "-1"}, {"--lr -1: must be > 0"}},
        {{"--lr", "nan"}, {"--lr nan: must be a finite number"}},
        {{"--lr", "1e-3x"}, {"--lr 1e-3x: not a number"}},
        {{"--lr", "1e999"}, {"--lr 1e999: out of range"}},
        {{"--optimizer", "sgd", "--momentum", "1"}, {"--momentum 1: must be in [0, 1)"}},
        {{"--weight-decay", "-0.1"}, {"--weight-decay -0.1: must be >= 0"}},
        {{"--label-smoothing", "1"}, {"--label-smoothing 1: must be in [0, 1)"}},
        {{"--limit-train", "0"}, {"--limit-train 0: must be at least 1"}},
        {{"--limit-test", "-1"}, {"--limit-test -1: must be at least 1"}},
        {{"--save-every", "-1"}, {"--save-every -1: must be at least 0"}},
        {{"--log-every", "-2"}, {"--log-every -2: must be at least 0"}},
        {{"--seed", "-1"}, {"--seed -1: not a whole number >= 0"}},
        {{"--cudnn-workspace-mib", "-5"}, {"--cudnn-workspace-mib -5: must be at least 0"}},
        {{"--cudnn-workspace-mib", "2097152"}, {"--cudnn-workspace-mib 2097152: must be at most 1048576"}},
        {{"--seed", "18446744073709551616"}, {"--seed 18446744073709551616", "out of range"}},
        {{"--dataset", "cifar11"}, {"--dataset cifar11: use cifar10, cifar100, imagefolder or synthetic"}},
        {{"--optimizer", "adagrad"}, {"--optimizer adagrad: use adam, adamw or sgd"}},
        {{"--device", "gpu"}, {"--device gpu: use auto, cuda, cpu or cpu-ref"}},
        {{"--conv-algo", "fft"},
         {"--conv-algo fft: use auto, cudnn, direct, im2col, implicit, winograd, winograd4, own or fastest"}},
        {{"--export-dtype", "f64"}, {"--export-dtype f64: use f32, f16 or bf16"}},
        {{"--evaluate"}, {"--evaluate needs the weights", "--resume", "--init-weights"}},
        {{"--dataset", "cifar10"},
         {"--dataset cifar10 needs --data DIR", "CIFAR-10 binary version", "cifar-10-batches-bin",
          "https://www.cs.toronto.edu/~kriz/cifar.html"}},
        {{"--dataset", "cifar100"}, {"--dataset cifar100 needs --data DIR", "cifar-100-binary"}},
        {{"--momentum", "0.9"}, {"--momentum 0.9: only --optimizer sgd has a momentum, not adam"}},
        {{"--momentum", "0.9", "--optimizer", "adamw"}, {"not adamw", "add --optimizer sgd"}},
        {{"--resume", "a.ckpt", "--init-weights", "w.safetensors"},
         {"--resume and --init-weights both given"}},
        {{"cifar10"}, {"unexpected argument 'cifar10'", "only flags"}},
        {{"--no-augment", "true"}, {"unexpected argument 'true': --no-augment takes no value"}},
        {{"--evaluate=1"}, {"--evaluate takes no value (got '1')"}},
        {{"--metrics", "log.txt"}, {"--metrics log.txt", "FILE.csv", "FILE.jsonl"}},
        {{"--synthetic-size", "100"}, {"--synthetic-size 100: give two image counts, TRAIN,TEST"}},
        {{"--synthetic-size", "100,0"}, {"--synthetic-size 0: must be at least 1"}},
        {{"--model", ""}, {"--model needs a value"}},
        {{"--lr-schedule", "steps:30"},
         {"--lr-schedule steps:30: use none, constant, step, multistep, cosine or one_cycle"}},
        {{"--lr-schedule", "step"}, {"--lr-schedule step: step takes step:STEP_SIZE[:GAMMA]"}},
        {{"--lr-schedule", "step:3:0.1:5"}, {"step takes step:STEP_SIZE[:GAMMA]"}},
        {{"--lr-schedule", "none:1"}, {"none takes none"}},
        {{"--lr-schedule", "step:x"}, {"--lr-schedule step:x: STEP_SIZE x: not a whole number"}},
        {{"--lr-schedule", "multistep:10,x"}, {"MILESTONES x: not a whole number"}},
        {{"--lr-schedule", "one_cycle:0.3:cubic"}, {"ANNEAL cubic: use cos or linear"}},
        {{"--lr-schedule", "cosine:0"}, {"T_MAX 0: must be at least 1"}},
        // Ranges come from the reference functions, named with the schedule's text.
        {{"--lr-schedule", "step:3:0"}, {"--lr-schedule step:3:0: step_lr: gamma 0 must be"}},
        {{"--lr-schedule", "constant:2"},
         {"--lr-schedule constant:2: constant_lr: factor 2 must be in (0, 1]"}},
        {{"--lr-schedule", "cosine::-1"}, {"cosine_lr: eta_min -1 must be"}},
        {{"--lr-schedule", "one_cycle:1.5"}, {"one_cycle: pct_start 1.5 must be in [0, 1]"}},
        {{"--lr-schedule", "multistep:-1"}, {"MILESTONES -1: must be at least 0"}},
        // parse_augment_spec's own message, which names the bad token, after the flag.
        {{"--augment", "crop:x,hflip"},
         {"--augment crop:x,hflip: ", "bad token \"x\" in op 0 \"crop:x\"", "accepted SIZE"}},
        {{"--augment", "hflip,blur:3"}, {"--augment hflip,blur:3: ", "bad token \"blur\"", "crop:SIZE"}},
        {{"--augment", "crop:32:4", "--no-augment"},
         {"--augment crop:32:4:constant:0 and --no-augment both given", "give one of them"}},
        {{"--no-augment", "--augment=hflip"}, {"--augment hflip:0.5 and --no-augment both given"}},
        {{"--augment", "/nonexistent/spec.json"},
         {"--augment /nonexistent/spec.json: cannot open the file", "FILE.json"}},
        {{"--cifar100-labels", "medium", "--dataset", "cifar100", "--data", "d"},
         {"--cifar100-labels medium: use fine or coarse"}},
        {{"--cifar100-labels", "coarse"},
         {"--cifar100-labels coarse goes with --dataset cifar100 only (this run's dataset is synthetic)"}},
        {{"--cifar100-labels", "fine", "--dataset", "cifar10", "--data", "d"},
         {"--cifar100-labels fine goes with --dataset cifar100 only"}},
        {{"--dataset", "imagefolder"},
         {"--dataset imagefolder needs --data DIR", "one subfolder of PNG/JPEG images per class",
          "train/ and test/"}},
    };
    for (const ErrorCase& c : cases) {
        const std::string message = usage_error(c.args);
        INFO(joined(c.args) << "-> " << message);
        for (const std::string& part : c.says) CHECK_THAT(message, Contains(part));
        CHECK_THAT(message, !Contains(".cpp:"));  // no file:line for the person at the terminal
    }
    CHECK_THAT(usage_error({"--frobnicate"}), !Contains("did you mean"));
    CHECK_THAT(usage_error({"--"}), !Contains("did you mean"));
    // A usage error is an Error too, for callers that catch only that.
    CHECK_THAT(test::error_message([] { parse_train_args({"--lr", "0"}); }), StartsWith("--lr 0: "));
}

TEST_CASE("--augment keeps the canonical text of a spec given as text or as a JSON file", "[options]") {
    const std::string text = "crop:32:4:reflect,hflip,jitter:0.4:0.4:0.4,erasing:0.25";
    const std::string canonical = data::format_augment_spec(data::parse_augment_spec(text));
    // Written out by hand, so that a canonical form that loses an argument cannot pass.
    CHECK(
        canonical ==
        "crop:32:4:reflect:0,hflip:0.5,jitter:0.6-1.4:0.6-1.4:0.6-1.4:0-0,erasing:0.25:0.02-0.33:0.3-3.3:0");
    CHECK(parse({"--augment", text}).augment_spec == canonical);
    CHECK(parse({"--augment", canonical}).augment_spec == canonical);  // the canonical text is a fixed point
    CHECK(parse({}).augment_spec.empty());                             // unset: the trainer's default

    const test::TempDir temp;
    const std::string file = temp.file("spec.json");
    test::write_bytes(file, data::augment_spec_to_json(data::parse_augment_spec(text)).dump(2));
    const TrainOptions from_file = parse({"--augment", file});
    CHECK(from_file.augment_spec == canonical);  // the content, not the path
    CHECK(to_json(from_file).at("augment_spec") == canonical);

    // A file with bad JSON, or JSON that is no spec: the flag, the file and the problem.
    test::write_bytes(temp.file("broken.json"), "[{\"op\": \"crop\", ");
    CHECK_THAT(usage_error({"--augment", temp.file("broken.json")}),
               Contains("--augment " + temp.file("broken.json") + ": the file is not valid JSON"));
    test::write_bytes(temp.file("unknown.json"), R"([{"op": "crop", "size": 32, "pading": 4}])");
    const std::string unknown = usage_error({"--augment", temp.file("unknown.json")});
    CHECK_THAT(unknown, Contains("--augment " + temp.file("unknown.json") + ": augment JSON"));
    CHECK_THAT(unknown, Contains("unknown key \"pading\""));
    CHECK_THAT(unknown, !Contains(".cpp:"));
}

TEST_CASE("lr schedules read back from their canonical text", "[options]") {
    for (const char* text : {"none", "constant", "constant:0.5:3", "step:30", "step:30:0.5",
                             "multistep:10,15", "multistep:15,10,10:0.2", "cosine", "cosine:50",
                             "cosine::1e-05", "cosine:50:0.001", "one_cycle", "one_cycle:0.25:linear"}) {
        INFO(text);
        CHECK(lr_schedule_text(parse_lr_schedule(text)) == text);
    }
    // Fields at their defaults drop out; an empty optional field is its default.
    CHECK(lr_schedule_text(parse_lr_schedule("step:30:0.1")) == "step:30");
    CHECK(lr_schedule_text(parse_lr_schedule("cosine:")) == "cosine");
    CHECK(lr_schedule_text(parse_lr_schedule("one_cycle:0.3:cos")) == "one_cycle");
    CHECK(lr_schedule_text(parse_lr_schedule("one_cycle::linear")) == "one_cycle:0.3:linear");
}

TEST_CASE("lr_at_epoch gives the reference schedules' values with the run's epochs filled in", "[options]") {
    const double lr = 0.1;
    const int64_t total = 12;
    const auto check_all = [&](const char* text, const std::function<double(int64_t)>& reference) {
        const LrSchedule schedule = parse_lr_schedule(text);
        for (int64_t epoch = 0; epoch < total; ++epoch) {
            INFO(text << " epoch " << epoch);
            CHECK(lr_at_epoch(schedule, lr, epoch, total) == reference(epoch));
        }
    };
    check_all("none", [&](int64_t) { return lr; });
    check_all("constant", [&](int64_t e) { return cpu::constant_lr(lr, cpu::ConstantLrOptions{}, e); });
    check_all("constant:0.5:3", [&](int64_t e) { return cpu::constant_lr(lr, {0.5, 3}, e); });
    check_all("step:3:0.5", [&](int64_t e) { return cpu::step_lr(lr, {3, 0.5}, e); });
    check_all("multistep:2,5", [&](int64_t e) { return cpu::multistep_lr(lr, {{2, 5}, 0.1}, e); });
    check_all("cosine", [&](int64_t e) { return cpu::cosine_lr(lr, {total, 0.0}, e); });
    check_all("cosine:4:0.01", [&](int64_t e) { return cpu::cosine_lr(lr, {4, 0.01}, e); });
    cpu::OneCycleLrOptions one_cycle;
    one_cycle.max_lr = lr;
    one_cycle.total_steps = total;
    check_all("one_cycle", [&](int64_t e) { return cpu::one_cycle_lr(one_cycle, e); });
    one_cycle.pct_start = 0.25;
    one_cycle.anneal_strategy = cpu::AnnealStrategy::linear;
    check_all("one_cycle:0.25:linear", [&](int64_t e) { return cpu::one_cycle_lr(one_cycle, e); });

    // A few by hand, so that a wrong mapping of the fields cannot pass.
    CHECK(lr_at_epoch(parse_lr_schedule("step:3:0.5"), lr, 7, total) == Approx(0.025).epsilon(1e-15));
    CHECK(lr_at_epoch(parse_lr_schedule("multistep:2,5"), lr, 5, total) == Approx(0.001).epsilon(1e-15));
    CHECK(lr_at_epoch(parse_lr_schedule("cosine"), lr, 6, total) == Approx(0.05).epsilon(1e-15));
    CHECK(lr_at_epoch(parse_lr_schedule("one_cycle"), lr, 0, total) == Approx(lr / 25).epsilon(1e-15));

    const cpu::LrSchedule resolved = resolve_lr_schedule(parse_lr_schedule("cosine:50"), lr, total);
    CHECK(resolved.cosine.t_max == 50);  // a given T_MAX stays
    CHECK_THAT(test::error_message([] { lr_at_epoch(parse_lr_schedule("cosine"), 0.1, 0, 0); }),
               Contains("total_epochs 0 must be at least 1"));
}

TEST_CASE("options go to JSON and back unchanged, through the command line's checks", "[options]") {
    const TrainOptions o = parse({"--model",
                                  "m.json",
                                  "--dataset",
                                  "cifar10",
                                  "--data",
                                  "/d",
                                  "--epochs",
                                  "9",
                                  "-b",
                                  "32",
                                  "--lr",
                                  "0.05",
                                  "--optimizer",
                                  "sgd",
                                  "--momentum",
                                  "0.9",
                                  "--weight-decay",
                                  "5e-4",
                                  "--lr-schedule",
                                  "multistep:3,6:0.2",
                                  "--label-smoothing",
                                  "0.1",
                                  "--seed",
                                  "18446744073709551615",
                                  "--device",
                                  "cuda",
                                  "--conv-algo",
                                  "direct",
                                  "--precision",
                                  "tf32",
                                  "--memory-format",
                                  "nhwc",
                                  "--gemm",
                                  "cublas",
                                  "--cudnn-benchmark",
                                  "--output-dir",
                                  "o",
                                  "--save-every",
                                  "3",
                                  "--resume",
                                  "r.ckpt",
                                  "--limit-train",
                                  "100",
                                  "--limit-test",
                                  "50",
                                  "--no-augment",
                                  "--no-dropout",
                                  "--no-shuffle",
                                  "--no-cuda-graph",
                                  "--export",
                                  "e.safetensors",
                                  "--metrics",
                                  "m.jsonl",
                                  "--synthetic-size",
                                  "7,8",
                                  "--log-every",
                                  "5"});
    const nlohmann::json j = to_json(o);
    CHECK(j.at("batch_size") == 32);
    CHECK(j.at("lr_schedule") == "multistep:3,6:0.2");
    CHECK(j.at("augment") == false);
    CHECK(j.at("cuda_graph") == false);
    CHECK(j.at("synthetic_size") == nlohmann::json{7, 8});
    CHECK(j.at("seed") == 18446744073709551615ull);

    const TrainOptions back = options_from_json(nlohmann::json::parse(j.dump()));
    CHECK(to_json(back) == j);
    CHECK(describe(back) == describe(o));
    CHECK(back.metrics_format == MetricsFormat::jsonl);
    CHECK(back.weight_decay == 5e-4);
    CHECK(back.lr_schedule.spec.multistep.milestones == std::vector<int64_t>{3, 6});
    CHECK_FALSE(back.augment);
    CHECK(back.seed == 18446744073709551615ull);

    // The defaults, with their unset optionals, come back unset; absent keys keep their defaults.
    const TrainOptions defaults = options_from_json(to_json(TrainOptions{}));
    CHECK_FALSE(defaults.weight_decay.has_value());
    CHECK_FALSE(defaults.limit_train.has_value());
    CHECK(to_json(defaults) == to_json(TrainOptions{}));
    CHECK(options_from_json({{"epochs", 3}}).epochs == 3);
    CHECK(options_from_json({{"epochs", 3}}).batch_size == 128);
    CHECK(to_json(defaults).at("augment_spec").is_null());
    CHECK(to_json(defaults).at("cifar100_labels").is_null());
}

TEST_CASE("the data options go to JSON and back, and are checked there as on the command line", "[options]") {
    const TrainOptions o = parse({"--dataset", "cifar100", "--data", "/d", "--cifar100-labels", "coarse",
                                  "--augment", "resizedcrop:24,hflip:0.25"});
    const nlohmann::json j = to_json(o);
    CHECK(j.at("augment_spec") == "resizedcrop:24:0.08-1:0.75-1.3333334,hflip:0.25");
    CHECK(j.at("augment") == true);
    CHECK(j.at("cifar100_labels") == "coarse");
    const TrainOptions back = options_from_json(nlohmann::json::parse(j.dump()));
    CHECK(back.augment_spec == o.augment_spec);
    CHECK(back.cifar100_labels == data::Cifar100Labels::coarse);
    CHECK(to_json(back) == j);
    CHECK(describe(back) == describe(o));

    // fine is the default and is written as null, so a fine run's checkpoint reads the same either way.
    const TrainOptions fine = parse({"--dataset", "cifar100", "--data", "/d", "--cifar100-labels", "fine"});
    CHECK(to_json(fine).at("cifar100_labels").is_null());
    CHECK_FALSE(options_from_json(to_json(fine)).cifar100_labels.has_value());

    const TrainOptions folder = parse({"--dataset", "imagefolder", "--data", "photos"});
    CHECK(options_from_json(to_json(folder)).dataset == "imagefolder");

    CHECK_THAT(test::error_message([] {
                   options_from_json({{"augment_spec", "crop:x"}});
               }),
               Contains("'augment_spec': augment_spec crop:x: augment spec \"crop:x\": bad token \"x\""));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"augment_spec", "hflip"}, {"augment", false}});
               }),
               Contains("--augment hflip:0.5 and --no-augment both given"));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"cifar100_labels", "coarse"}});
               }),
               Contains("--cifar100-labels coarse goes with --dataset cifar100 only"));
}

TEST_CASE("options_from_json names the key of a bad value", "[options]") {
    CHECK_THAT(test::error_message([] { options_from_json({{"lrr", 1}}); }), Contains("unknown key 'lrr'"));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"batch_size", 0}});
               }),
               Contains("'batch_size': batch_size 0: must be at least 1"));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"lr", "fast"}});
               }),
               Contains("lr fast: not a number"));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"augment", "no"}});
               }),
               Contains("'augment' must be true or false"));
    CHECK_THAT(test::error_message([] {
                   options_from_json({{"dataset", "cifar10"}});
               }),
               Contains("--dataset cifar10 needs --data DIR"));
    CHECK_THAT(test::error_message([] { options_from_json(nlohmann::json::array()); }),
               Contains("expected a JSON object"));
}

TEST_CASE("describe writes one line per setting with the effective weight decay", "[options]") {
    TrainOptions o = parse({"--optimizer", "adamw", "--limit-test", "10"});
    const std::string text = describe(o);
    CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<long>(to_json(o).size()));
    CHECK_THAT(text, Contains("weight_decay     0.01 (adamw's default)\n"));
    CHECK_THAT(text, Contains("limit_train      all\n"));
    CHECK_THAT(text, Contains("limit_test       10\n"));
    CHECK_THAT(text, Contains("optimizer        adamw\n"));
    CHECK_THAT(text, Contains("lr_schedule      none\n"));
    CHECK_THAT(text, Contains("resume           -\n"));
    CHECK_THAT(text, Contains("augment_spec     - (the default: crop:H:4,hflip for H×H images)\n"));
    CHECK_THAT(text, Contains("cifar100_labels  -\n"));
    CHECK_THAT(describe(parse({"--no-augment"})), Contains("augment_spec     - (--no-augment)\n"));
    CHECK_THAT(describe(parse({"--augment", "vflip"})), Contains("augment_spec     vflip:0.5\n"));
    CHECK_THAT(describe(parse({"--dataset", "cifar100", "--data", "d"})),
               Contains("cifar100_labels  fine\n"));
}
