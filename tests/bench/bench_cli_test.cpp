// The cudacnn-bench program through its command line: the CPU smoke pass that CI runs (--quick), the JSON and
// CSV files, the emulated kernels checked against the reference at odd shapes, and its exit codes.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "cudacnn/bench/record.hpp"
#include "cudacnn/device.hpp"
#include "support/bench_runs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::bench;
using Catch::Matchers::Contains;

namespace {

using test::Outcome;
using test::read_report;
using test::run_bench;

const Record* find(const Report& report, const std::string& op, const std::string& direction,
                   const std::string& algorithm, const std::string& shape = "") {
    for (const Record& r : report.records)
        if (r.op == op && r.direction == direction && r.algorithm == algorithm && (shape.empty() || r.shape == shape))
            return &r;
    return nullptr;
}

}  // namespace

TEST_CASE("cudacnn-bench --quick: the CPU smoke pass, its table, JSON and CSV", "[bench][cli]") {
    const test::TempDir temp;
    // --algos cpu: the CPU pass also where a GPU is (without one it is the default).
    const Outcome o = run_bench(fmt::format("--quick --model small_cnn --algos cpu --json {} --csv {}",
                                            temp.file("b.json"), temp.file("b.csv")),
                                temp);
    INFO(o.output);
    REQUIRE(o.exit_code == 0);
#ifdef CUDACNN_EMU
    const bool real_gpu = false;
#else
    const bool real_gpu = gpu_status().available;
#endif
    CHECK_THAT(o.output, Contains(real_gpu ? "GPU algorithms not asked for" : "GPU timings need a GPU"));
    CHECK_THAT(o.output, Contains("median µs"));

    const Report report = read_report(temp.file("b.json"));
    CHECK(report.model == "small_cnn");
    CHECK(report.batch_size == 8);
    // Every layer shape of small_cnn on the reference, forward and backward, each timed.
    for (const char* shape : {"N=8,C=3,H=32,W=32,OC=8,K=3,P=1", "N=8,C=8,H=16,W=16,OC=16,K=3,P=1"}) {
        for (const char* direction : {"forward", "backward"}) {
            const Record* r = find(report, "conv2d", direction, "cpu", shape);
            REQUIRE(r != nullptr);
            CHECK(r->status == Status::ok);
            CHECK(r->repeats == 2);
            CHECK(r->median_us > 0.0);
            CHECK(r->gflops > 0.0);
            CHECK(r->device == "cpu");
        }
    }
    // 2·N·OC·OH·OW·C·KH·KW = 2·8·8·32·32·3·9 for the first conv's forward.
    CHECK(find(report, "conv2d", "forward", "cpu", "N=8,C=3,H=32,W=32,OC=8,K=3,P=1")->flops == 2.0 * 8 * 8 * 32 * 32 * 3 * 9);
    for (const char* op : {"batch_norm2d", "relu", "max_pool2d", "linear", "cross_entropy"}) {
        INFO(op);
        CHECK(find(report, op, "backward", "cpu") != nullptr);
    }
    const Record* adam = find(report, "adam", "step", "cpu", "P=11690");
    REQUIRE(adam != nullptr);
    CHECK(adam->gbps > 0.0);
    CHECK(find(report, "roofline", "copy", "memcpy")->peak_percent == 100.0);
    // Augmentation: the trainer's transform (reference and fused pass) and every op, at batch 1, 32 and 128.
    CHECK(find(report, "augment", "forward", "cpu", "N=128")->images_per_s > 0.0);
    const Record* fused = find(report, "augment", "forward", "cpu_fused", "N=32");
    REQUIRE(fused != nullptr);
    CHECK(fused->status == Status::ok);
    CHECK(fused->max_error == 0.0);
    for (const char* shape : {"OP=crop,N=1", "OP=jitter,N=32", "OP=perspective,N=128"}) {
        INFO(shape);
        const Record* r = find(report, "augment", "forward", "cpu", shape);
        REQUIRE(r != nullptr);
        CHECK(r->status == Status::ok);
        CHECK(r->images_per_s > 0.0);
    }
    const Record* step = find(report, "train_step", "step", "cpu");
    REQUIRE(step != nullptr);
    CHECK(step->status == Status::ok);
    CHECK(step->images_per_s > 0.0);
    const Record* epoch = find(report, "epoch", "estimate", "cpu");
    REQUIRE(epoch != nullptr);
    CHECK(epoch->epoch_s == Approx(6250 * *step->median_us * 1e-6));  // 50,000 / 8 steps

    // The CSV holds the same records under the same columns.
    std::istringstream csv(test::read_bytes(temp.file("b.csv")));
    std::string header, line;
    std::getline(csv, header);
    CHECK(header + "\n" == csv_header());
    size_t rows = 0;
    while (std::getline(csv, line)) rows += 1;  // no note here holds a line break
    CHECK(rows == report.records.size());
}

TEST_CASE("cudacnn-bench checks the emulated kernels against the reference before timing them", "[bench][cli]") {
    // The emu flavour's kernels (on a real GPU the same checks run through gpu-check's bench step).
    if (!kEmulated) {
        WARN("skipped: this case checks the emu flavour's emulated kernels; this is the cuda flavour");
        return;
    }
    const test::TempDir temp;
    // An odd geometry (stride 2, 7×6 images, 3 images: fewer than the check's 4 distinct ones) on every conv
    // algorithm; cuDNN is not part of the emu flavour.
    const Outcome o = run_bench(fmt::format("--shape conv2d:N=3,C=5,H=7,W=6,OC=4,K=3,S=2,P=1 "
                                            "--algos cudnn,direct,im2col,implicit,winograd,im2col_tf32,implicit_tf32,cpu "
                                            "--warmup 0 --repeats 1 --json {}",
                                            temp.file("conv.json")),
                                temp);
    INFO(o.output);
    REQUIRE(o.exit_code == 0);
    const Report report = read_report(temp.file("conv.json"));
    // Every direction of one algorithm's rows on one shape: checked, emulated, within its tolerance; a *_tf32
    // row with the TF32 tolerance and visibly rounded, an FP32 row close to the reference.
    const auto check_emulated_rows = [](const Report& from, const std::string& algorithm, const std::string& shape) {
        const bool tf32 = algorithm.size() > 5 && algorithm.compare(algorithm.size() - 5, 5, "_tf32") == 0;
        for (const char* direction : {"forward", "backward_data", "backward_filter"}) {
            INFO(algorithm << " " << direction);
            const Record* r = find(from, "conv2d", direction, algorithm, shape);
            REQUIRE(r != nullptr);
            CHECK(r->status == Status::ok);
            CHECK(r->device == "emulated");
            REQUIRE(r->max_error.has_value());
            CHECK(*r->max_error <= *r->tolerance);
            if (tf32) {
                CHECK(*r->tolerance == 1e-2);   // kTf32CheckTolerance
                CHECK(*r->max_error > 1e-5);    // the inputs were rounded to TF32
            } else {
                CHECK(*r->max_error < 1e-5);  // float against double: a wrong tap would be off by ~1e-1
            }
        }
    };
    for (const char* algorithm : {"direct", "im2col", "implicit", "im2col_tf32", "implicit_tf32"}) {
        check_emulated_rows(report, algorithm, "N=3,C=5,H=7,W=6,OC=4,K=3,S=2,P=1");
    }
    const Record* cudnn = find(report, "conv2d", "forward", "cudnn");
    REQUIRE(cudnn != nullptr);
    CHECK(cudnn->status == Status::unsupported);

    // Winograd F(2×2, 3×3) computes stride 1 only: unsupported above, checked and timed on a stride-1 layer
    // with odd maps (partial last tiles).
    const Record* strided = find(report, "conv2d", "forward", "winograd");
    REQUIRE(strided != nullptr);
    CHECK(strided->status == Status::unsupported);
    const Outcome winograd = run_bench(fmt::format("--shape conv2d:N=3,C=5,H=7,W=6,OC=4,K=3,P=1 --algos "
                                                   "winograd,winograd_tf32,winograd4,winograd4_tf32 "
                                                   "--warmup 0 --repeats 1 --json {}",
                                                   temp.file("winograd.json")),
                                       temp);
    INFO(winograd.output);
    REQUIRE(winograd.exit_code == 0);
    const Report winograd_report = read_report(temp.file("winograd.json"));
    // The same on the own TF32 GEMM (winograd_tf32): checked with the TF32 tolerance, and shown to round; and
    // the same with F(4×4) tiles.
    for (const char* algorithm : {"winograd", "winograd_tf32", "winograd4", "winograd4_tf32"}) {
        check_emulated_rows(winograd_report, algorithm, "N=3,C=5,H=7,W=6,OC=4,K=3,P=1");
    }

    // The CifarCNN's first batch norm and pooling layer, the loss and the optimizer on the emulated kernels, at
    // batch 2.
    const Outcome layers = run_bench(fmt::format("--quick -b 2 --algos kernel --no-step --filter "
                                                 "'^(batch_norm2d|max_pool2d) .* N=2,C=(32|64),H=32|^(cross_entropy|adam) ' --json {}",
                                                 temp.file("layers.json")),
                                     temp);
    INFO(layers.output);
    REQUIRE(layers.exit_code == 0);
    const Report layer_report = read_report(temp.file("layers.json"));
    std::map<std::string, int> ok;
    for (const Record& r : layer_report.records)
        if (r.status == Status::ok && r.op != "roofline") ok[r.op + " " + r.direction] += 1;
    CHECK(ok == std::map<std::string, int>{{"batch_norm2d backward", 1}, {"batch_norm2d forward", 1},
                                           {"cross_entropy backward", 1}, {"cross_entropy forward", 1},
                                           {"max_pool2d backward", 1}, {"max_pool2d forward", 1}, {"adam step", 1}});
}

TEST_CASE("cudacnn-bench checks the emulated augmentation kernels against the reference", "[bench][cli]") {
    if (!kEmulated) {
        WARN("skipped: this case checks the emu flavour's emulated kernels; this is the cuda flavour");
        return;
    }
    const test::TempDir temp;
    // Every op at batch 1 (the default list's N=1 cases), and the trainer's transform at batch 2 via --shape.
    const Outcome ops = run_bench(fmt::format("--quick --algos kernel,cpu --no-step --filter '^augment .*N=1$' --json {}",
                                              temp.file("ops.json")),
                                  temp);
    INFO(ops.output);
    REQUIRE(ops.exit_code == 0);
    const Outcome pipeline = run_bench(fmt::format("--shape augment:N=2 --algos kernel,cpu --warmup 0 --repeats 1 --json {}",
                                                   temp.file("default.json")),
                                       temp);
    INFO(pipeline.output);
    REQUIRE(pipeline.exit_code == 0);
    std::map<std::string, int> ok;
    for (const char* file : {"ops.json", "default.json"}) {
        for (const Record& r : read_report(temp.file(file)).records) {
            if (r.op != "augment") continue;
            INFO(r.shape << " " << r.algorithm << ": " << r.note);
            CHECK(r.status == Status::ok);
            CHECK(r.images_per_s > 0.0);
            if (r.algorithm != "cpu") {  // the reference has no check of its own
                REQUIRE(r.max_error.has_value());
                CHECK(*r.max_error <= 1e-5);
                CHECK(r.tolerance == 1e-5);
            }
            ok[r.algorithm + (r.shape == "N=2" ? " default" : "")] += 1;
        }
    }
    // 15 entries at N=1 (the default and 14 ops; the default and normalize have fused rows), then the default at
    // N=2.
    CHECK(ok == std::map<std::string, int>{{"kernel", 15}, {"fused", 2}, {"cpu", 15}, {"cpu_fused", 2},
                                           {"kernel default", 1}, {"fused default", 1}, {"cpu default", 1},
                                           {"cpu_fused default", 1}});
    const Report ops_report = read_report(temp.file("ops.json"));  // find() points into it: keep it alive
    const Record* kernel = find(ops_report, "augment", "forward", "kernel", "OP=affine,N=1");
    REQUIRE(kernel != nullptr);
    CHECK(kernel->device == "emulated");
    CHECK_THAT(kernel->note, Contains("one kernel per op"));
}

TEST_CASE("cudacnn-bench exit codes: 2 for a bad command line, 1 for an error", "[bench][cli]") {
    const test::TempDir temp;
    const Outcome bad_flag = run_bench("--repeats 0", temp);
    CHECK(bad_flag.exit_code == 2);
    CHECK_THAT(bad_flag.output, Contains("--repeats 0: must be at least 1") && Contains("--help"));
    const Outcome bad_shape = run_bench("--shape conv2d:N=1", temp);
    CHECK(bad_shape.exit_code == 2);
    CHECK_THAT(bad_shape.output, Contains("conv2d needs C"));
    const Outcome bad_augment = run_bench("--shape augment:OP=sharpen,N=2", temp);
    CHECK(bad_augment.exit_code == 2);
    CHECK_THAT(bad_augment.output, Contains("OP=sharpen: unknown augmentation op") && Contains("perspective"));
    const Outcome no_model = run_bench(fmt::format("--quick --model {}", temp.file("missing.json")), temp);
    CHECK(no_model.exit_code == 1);
    CHECK_THAT(no_model.output, Contains("cudacnn-bench: error:") && Contains("missing.json"));
    const Outcome unwritable = run_bench(fmt::format("--shape relu:N=2,C=3 --json {}", temp.file("no/such/folder.json")), temp);
    CHECK(unwritable.exit_code == 1);
    CHECK_THAT(unwritable.output, Contains("cannot write") && Contains("folder.json"));
    const Outcome help = run_bench("--help", temp);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Contains("--shape OP:K=V") && Contains("conv2d:N,C,H,W,OC,KH,KW") && Contains("--repeats N"));
}

TEST_CASE("tools/bench: pytorch_bench.py writes cudacnn-bench's schema and report.py merges both", "[bench][cli][python]") {
    // Debian's python3-torch (1.13) may sit beside another python3 earlier on PATH.
    std::string python;
    for (const char* candidate : {"python3", "/usr/bin/python3"}) {
        if (std::system(fmt::format("{} -c 'import torch' > /dev/null 2>&1", candidate).c_str()) == 0) {
            python = candidate;
            break;
        }
    }
    if (python.empty()) {
        WARN("skipped: no python3 with torch (python3-torch) on this machine");
        return;
    }
    const test::TempDir temp;
    const std::string tools = std::string(CUDACNN_FIXTURES_DIR) + "/../../tools/bench";
    const std::string log = temp.file("python.txt");
    const int torch_status = std::system(fmt::format("{} {}/pytorch_bench.py --quick -b 2 --variants eager,bf16,compile --augment-batches 2 "
                                                     "--json {} > {} 2>&1",
                                                     python, tools, temp.file("torch.json"), log)
                                             .c_str());
    INFO(test::read_bytes(log));
    REQUIRE(torch_status == 0);
    const Report torch = read_report(temp.file("torch.json"));  // our reader accepts PyTorch's side as it is
    const Record* conv = find(torch, "conv2d", "backward_filter", "torch_eager", "N=2,C=3,H=32,W=32,OC=32,K=3,P=1");
    REQUIRE(conv != nullptr);
    CHECK(conv->status == Status::ok);
    CHECK(conv->flops == 2.0 * 2 * 32 * 32 * 32 * 3 * 9);
    CHECK(find(torch, "train_step", "step", "torch_eager", "model=cifar_cnn,N=2")->images_per_s > 0.0);
    CHECK(find(torch, "epoch", "estimate", "torch_eager", "model=cifar_cnn,N=2")->epoch_s > 0.0);
    if (torch.device == "cpu") CHECK(find(torch, "train_step", "step", "torch_compile")->status == Status::skipped);
    // Autocast to bfloat16 runs on the CPU too (PyTorch 1.13 has it), so this machine checks the variant's code.
    const Record* bf16 = find(torch, "train_step", "step", "torch_bf16", "model=cifar_cnn,N=2");
    REQUIRE(bf16 != nullptr);
    CHECK(bf16->status == Status::ok);
    CHECK(find(torch, "conv2d", "forward", "torch_bf16", "N=2,C=3,H=32,W=32,OC=32,K=3,P=1")->status == Status::ok);
    // The augmentation ops with torchvision (Debian's python3-torchvision beside python3-torch), under our shapes.
    const bool torchvision = std::system(fmt::format("{} -c 'import torchvision' > /dev/null 2>&1", python).c_str()) == 0;
    for (const char* algorithm : {"torch_tv_loop", "torch_tv_batch"}) {
        for (const char* shape : {"N=2", "OP=hflip,N=2", "OP=perspective,N=2"}) {
            INFO(algorithm << " " << shape);
            const Record* r = find(torch, "augment", "forward", algorithm, torchvision ? shape : "");
            REQUIRE(r != nullptr);
            CHECK(r->status == (torchvision ? Status::ok : Status::skipped));
            if (torchvision) CHECK(r->images_per_s == Approx(2 / (*r->median_us * 1e-6)));
        }
    }

    const Outcome ours = run_bench(fmt::format("--quick -b 2 --algos cpu --filter '^conv2d forward cpu N=2,C=3,' --no-step --json {}",
                                               temp.file("ours.json")),
                                   temp);
    INFO(ours.output);
    REQUIRE(ours.exit_code == 0);
    const Outcome augment =
        run_bench(fmt::format("--shape augment:OP=hflip,N=2 --algos cpu --json {}", temp.file("augment.json")), temp);
    INFO(augment.output);
    REQUIRE(augment.exit_code == 0);
    const Outcome profile = run_bench(
        fmt::format("--quick --model small_cnn -b 2 --algos cpu --profile --json {}", temp.file("profile.json")), temp);
    INFO(profile.output);
    REQUIRE(profile.exit_code == 0);
    const int report_status = std::system(fmt::format("{} {}/report.py {} {} {} {} --out {} > {} 2>&1", python, tools,
                                                      temp.file("ours.json"), temp.file("augment.json"),
                                                      temp.file("profile.json"), temp.file("torch.json"),
                                                      temp.file("report.md"), log)
                                              .c_str());
    REQUIRE(report_status == 0);
    const std::string report = test::read_bytes(temp.file("report.md"));
    INFO(report);
    // torch_compile gets a column where it ran (on a GPU), the torchvision columns where torchvision is.
    CHECK_THAT(report, Contains("| op | shape | direction | cpu | torch_eager | "));
    CHECK_THAT(report, Contains(torchvision ? "| torch_tv_loop | torch_tv_batch | ours / torch_eager | ours / torch best |"
                                            : "| ours / torch_eager | ours / torch best |"));
    if (torchvision) CHECK_THAT(report, Contains("| augment | OP=hflip,N=2 | forward | "));
    CHECK_THAT(report, Contains("| conv2d | N=2,C=3,H=32,W=32,OC=32,K=3,P=1 | forward | "));
    CHECK_THAT(report, Contains("| train_step | model=cifar_cnn,N=2 | step | – | "));
    // --profile's per-node records get tables of their own, not rows of the comparison.
    CHECK_THAT(report, !Contains("| train_profile |") && !Contains("node=features.0"));
    CHECK_THAT(report, Contains("## train_profile: model=small_cnn,N=2, cpu") &&
                           Contains("## infer_profile: model=small_cnn,N=2, cpu") &&
                           Contains("| node | kind | forward µs | backward µs | note |") &&
                           Contains("| features.0 | conv2d | ") && Contains("| flatten | flatten | – | – | ") &&
                           Contains("| (sum) | | "));
}
