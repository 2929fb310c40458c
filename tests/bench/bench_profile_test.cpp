// cudacnn-bench --profile through its command line: every node of the model timed forward and backward (or
// marked as not run), times that add up to the sum row, on the fast CPU path and on the emulated kernels; and
// the executor's profiling under it, which must not change what a step computes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <sys/wait.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/bench/record.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/graph/profile.hpp"
#include "support/executor_steps.hpp"
#include "support/bench_runs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::bench;
using Catch::Matchers::Contains;

namespace {

using test::Outcome;
using test::read_report;
using test::run_bench;

// small_cnn's nodes (graph order) and the parts after them that a training step times.
const std::vector<std::string> kNodes = {"features.0", "features.1", "features.2", "features.3", "features.4",
                                         "features.5", "features.6", "features.7", "flatten",    "classifier"};

std::string node_of(const Record& r) {
    const std::string key = ",node=";
    const auto at = r.shape.find(key);
    if (at == std::string::npos) return "";
    const auto end = r.shape.find(',', at + key.size());
    return r.shape.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
}

// One variant's profile records of one pass: every node present, the times >= 0, and the sum row the sum of
// the parts' medians.
void check_pass(const Report& report, const std::string& op, const std::string& algorithm, bool training) {
    INFO(op << " " << algorithm);
    std::set<std::string> nodes;
    std::map<std::string, int> directions;
    double sum_of_parts = 0.0;
    const Record* sum = nullptr;
    const Record* whole = nullptr;
    for (const Record& r : report.records) {
        if (r.op != op || r.algorithm != algorithm) continue;
        INFO(r.shape << " " << r.direction << ": " << r.note);
        if (r.direction == "sum") {
            sum = &r;
            continue;
        }
        if (r.direction == "profiled_step") {
            whole = &r;
            continue;
        }
        CHECK(r.shape.rfind("model=small_cnn,N=2,node=", 0) == 0);
        nodes.insert(node_of(r));
        if (r.status == Status::skipped) {
            CHECK(r.direction == "forward");
            CHECK_FALSE(r.median_us.has_value());
            continue;
        }
        CHECK(r.status == Status::ok);
        CHECK(r.repeats == 2);
        REQUIRE(r.median_us.has_value());
        CHECK(*r.median_us >= 0.0);
        CHECK(*r.min_us <= *r.median_us);
        sum_of_parts += *r.median_us;
        directions[r.direction] += 1;
    }
    for (const std::string& node : kNodes) {
        INFO(node);
        CHECK(nodes.count(node) == 1);
    }
    CHECK(nodes.count("loss") == 1);
    CHECK(nodes.count("optimizer") == (training ? 1 : 0));
    CHECK(nodes.count("nonfinite_checks") == (training ? 1 : 0));
    CHECK(nodes.count("all_reduce") == 0);  // a single process
    CHECK(directions["forward"] >= 4);      // two convolutions, two poolings, the linear layer at least
    CHECK(directions["backward"] == (training ? directions["forward"] : 0));
    REQUIRE(sum != nullptr);
    REQUIRE(sum->median_us.has_value());
    CHECK(*sum->median_us == Approx(sum_of_parts).epsilon(1e-9));
    CHECK(*sum->median_us > 0.0);
    CHECK_THAT(sum->note, Contains("the step measured as usual"));
    REQUIRE(whole != nullptr);
    CHECK(whole->repeats == 2);
    CHECK(*whole->median_us > 0.0);
}

}  // namespace

TEST_CASE("Executor profiling: the same steps, each part timed, CUDA graphs again afterwards", "[bench][profile]") {
    using namespace cudacnn::graph;
    const Graph model = build_graph(builtin_model("small_cnn"));
    ExecutorOptions options;
    options.backend = kEmulated ? Backend::gpu : Backend::cpu;  // the emulated kernels where they are
    options.batch_size = 2;
    options.seed = 3;
    HostTensor<float> x(Shape{2, 3, 32, 32});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.01f * static_cast<float>(i));
    const std::vector<int64_t> labels{1, 7};
    // Three training steps and an evaluation step each; `profiled` profiles steps 1 and 2 and the evaluation.
    auto run = [&](bool profiled, StepProfile* train, StepProfile* eval) {
        auto executor = std::make_unique<Executor>(model, options);
        executor->initialize(options.seed);
        executor->set_batch(x.data(), labels.data(), 2);
        for (int64_t step = 0; step < 3; ++step) {
            if (profiled && step == 1) executor->start_profile();
            executor->train_step(step);
        }
        if (profiled) *train = executor->stop_profile();
        if (profiled) executor->start_profile();
        executor->eval_step();
        if (profiled) *eval = executor->stop_profile();
        executor->read_metrics();
        return executor;
    };
    StepProfile train, eval;
    const auto plain = run(false, nullptr, nullptr);
    const auto profiled = run(true, &train, &eval);
    CHECK(test::bit_identical(plain->model_state(), profiled->model_state()));
    CHECK(test::bit_identical(plain->optimizer_state(), profiled->optimizer_state()));

    CHECK(train.steps == 2);
    CHECK(eval.steps == 1);
    CHECK(train.clock == (kEmulated ? "CUDA events on the executor's stream" : "the host clock"));
    REQUIRE(train.nodes == model.nodes.size());
    REQUIRE(train.parts.size() == model.nodes.size() + 4);
    for (std::size_t i = 0; i < train.parts.size(); ++i) {
        const ProfilePart& part = train.parts[i];
        INFO(part.name << ": " << part.detail);
        const bool runs = part.kind != "flatten" && part.detail.rfind("fused into", 0) != 0 && part.name != "all_reduce";
        CHECK(part.forward_us.size() == (runs ? 2u : 0u));
        CHECK(part.backward_us.size() == (runs && i < train.nodes ? 2u : 0u));
        for (double us : part.forward_us) CHECK(us >= 0.0);
        CHECK(eval.parts[i].forward_us.size() == (runs && part.name != "optimizer" && part.name != "nonfinite_checks" ? 1u : 0u));
        CHECK(eval.parts[i].backward_us.empty());
        CHECK((i < train.nodes ? part.output.rank() >= 2 && part.output[0] == 2 : part.output.rank() == 0));
    }
    CHECK(train.parts[0].name == "features.0");
    CHECK(train.parts[0].output == Shape{2, 8, 32, 32});
    CHECK(train.parts.back().name == "nonfinite_checks");
    CHECK(train.parts.back().output.rank() == 0);
    CHECK(train.step_us.size() == 2);
    // The parts lie inside their step: their times add up to no more than the step's (events: same clock).
    double parts = 0.0;
    for (const ProfilePart& part : train.parts) {
        if (!part.forward_us.empty()) parts += part.forward_us[0];
        if (!part.backward_us.empty()) parts += part.backward_us[0];
    }
    CHECK(parts <= train.step_us[0] * 1.0001 + 1.0);
    if (kEmulated) {
        // Profiled steps run eagerly; without the profiler the next steps replay CUDA graphs again.
        CHECK(profiled->cuda_graph_launches() < plain->cuda_graph_launches());
        const int64_t before = profiled->cuda_graph_launches();
        profiled->train_step(3);
        profiled->train_step(4);
        CHECK(profiled->cuda_graph_launches() > before);
    }
    CHECK_THROWS_WITH(profiled->stop_profile(), Contains("without start_profile"));
}

TEST_CASE("cudacnn-bench --profile: the fast CPU path's steps node by node", "[bench][cli][profile]") {
    const test::TempDir temp;
    const Outcome o = run_bench(fmt::format("--quick -b 2 --model small_cnn --algos cpu --profile --json {}",
                                            temp.file("p.json")),
                                temp);
    INFO(o.output);
    REQUIRE(o.exit_code == 0);
    const Report report = read_report(temp.file("p.json"));
    // The steps alone: no per-op rows, no roofline; the step measured as usual beside its profile.
    for (const Record& r : report.records) {
        INFO(r.op);
        CHECK((r.op == "train_step" || r.op == "infer_step" || r.op == "epoch" || r.op == "train_profile" ||
               r.op == "infer_profile"));
    }
    check_pass(report, "train_profile", "cpu", true);
    check_pass(report, "infer_profile", "cpu", false);
    // The printed table: a row per node with its kind and output, the fused-or-alias note, the sums.
    CHECK_THAT(o.output, Contains("profile of cpu, model=small_cnn,N=2") && Contains("timed by the host clock"));
    CHECK_THAT(o.output, Contains("train fwd µs") && Contains("infer µs") && Contains("algorithm / note"));
    CHECK_THAT(o.output, Contains("features.0") && Contains("conv2d") && Contains("2x8x32x32"));
    CHECK_THAT(o.output, Contains("shares its input's memory"));  // flatten
    CHECK_THAT(o.output, Contains("train: sum of the parts") && Contains("infer: sum of the parts"));
}

TEST_CASE("cudacnn-bench --profile: the emulated kernels' steps, FP32 and TF32, timed by events", "[bench][cli][profile]") {
    if (!kEmulated) {
        WARN("skipped: this case profiles the emu flavour's emulated kernels; this is the cuda flavour");
        return;
    }
    const test::TempDir temp;
    const Outcome o = run_bench(fmt::format("--quick -b 2 --model small_cnn --algos kernel --profile --json {}",
                                            temp.file("p.json")),
                                temp);
    INFO(o.output);
    REQUIRE(o.exit_code == 0);
    const Report report = read_report(temp.file("p.json"));
    // The default variants only: FP32 and TF32 behind CUDA graphs, profiled without them.
    std::set<std::string> variants;
    for (const Record& r : report.records) variants.insert(r.algorithm);
    CHECK(variants == std::set<std::string>{"cuda_graph", "cuda_graph_tf32"});
    for (const char* algorithm : {"cuda_graph", "cuda_graph_tf32"}) {
        check_pass(report, "train_profile", algorithm, true);
        check_pass(report, "infer_profile", algorithm, false);
    }
    CHECK_THAT(o.output, Contains("timed by CUDA events") && Contains("no CUDA graph"));
    CHECK_THAT(o.output, Contains("fused into 'features.1'"));  // the ReLU after the batch norm
    CHECK_THAT(o.output, Contains("im2col"));                   // the convolution's plan

    // --filter picks the variants and passes to profile.
    const Outcome filtered = run_bench(fmt::format("--quick -b 2 --model small_cnn --algos kernel --profile "
                                                   "--filter '^(train_step|train_profile) .* kernels ' --json {}",
                                                   temp.file("f.json")),
                                       temp);
    INFO(filtered.output);
    REQUIRE(filtered.exit_code == 0);
    std::map<std::string, int> rows;
    for (const Record& r : read_report(temp.file("f.json")).records) rows[r.op + " " + r.algorithm] += 1;
    CHECK(rows.count("train_step kernels") == 1);
    CHECK(rows["train_profile kernels"] > 10);
    CHECK(rows.count("infer_profile kernels") == 0);
    CHECK(rows.size() == 2);
}

TEST_CASE("cudacnn-bench --profile takes neither --shape nor --no-step", "[bench][cli][profile]") {
    const test::TempDir temp;
    const Outcome shape = run_bench("--profile --shape relu:N=2,C=3", temp);
    CHECK(shape.exit_code == 2);
    CHECK_THAT(shape.output, Contains("--profile times a model's steps node by node"));
    const Outcome no_step = run_bench("--profile --no-step", temp);
    CHECK(no_step.exit_code == 2);
    const Outcome help = run_bench("--help", temp);
    CHECK_THAT(help.output, Contains("--profile") && Contains("train_profile"));
}
