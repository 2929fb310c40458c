// cudacnn-bench's library parts: timing statistics, the rotation count, the correctness verdicts and their
// tolerances (the parity tests' own), --shape parsing, a model's cases, the record schema, the flags, and the
// rule that a wrong implementation is reported and never timed.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/bench/cases.hpp"
#include "cudacnn/bench/check.hpp"
#include "cudacnn/bench/options.hpp"
#include "cudacnn/bench/record.hpp"
#include "cudacnn/bench/timing.hpp"
#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/options.hpp"
#include "src/bench/measure.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using namespace cudacnn::bench;
using Catch::Matchers::Contains;

TEST_CASE("bench timing: median, quartiles and spread as numpy computes them", "[bench]") {
    // numpy.percentile([5, 1, 3, 2, 4], [25, 50, 75]) = [2, 3, 4]
    const TimingSummary odd = summarize({5, 1, 3, 2, 4});
    CHECK(odd.count == 5);
    CHECK(odd.median == 3.0);
    CHECK(odd.q1 == 2.0);
    CHECK(odd.q3 == 4.0);
    CHECK(odd.min == 1.0);
    CHECK(odd.max == 5.0);
    CHECK(odd.spread_percent() == Approx(200.0 / 3.0));
    // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25]
    const TimingSummary even = summarize({4, 3, 2, 1});
    CHECK(even.median == 2.5);
    CHECK(even.q1 == 1.75);
    CHECK(even.q3 == 3.25);
    CHECK(summarize({7}).spread_percent() == 0.0);
    CHECK_THROWS_WITH(summarize({}), Contains("no timings"));
    CHECK_THROWS_WITH(summarize({1.0, std::nan("")}), Contains("NaN"));
}

TEST_CASE("bench rotation: enough input copies to cover twice the L2 cache", "[bench]") {
    constexpr int64_t MB = 1 << 20;
    CHECK(rotation_count(20 * MB, 50 * MB, 1024 * MB) == 5);   // ⌈100 / 20⌉
    CHECK(rotation_count(200 * MB, 50 * MB, 1024 * MB) == 2);  // at least 2: the previous call's data differs
    CHECK(rotation_count(1 * MB, 50 * MB, 1024 * MB) == 16);   // at most 16
    CHECK(rotation_count(300 * MB, 50 * MB, 700 * MB) == 2);   // as many as fit ...
    CHECK(rotation_count(800 * MB, 50 * MB, 700 * MB) == 1);   // ... and at least one
    CHECK(rotation_count(20 * MB, 0, 1024 * MB) == 1);         // the emulator: no L2 to defeat
}

TEST_CASE("bench checks: the parity tests' metric and tolerances", "[bench]") {
    CHECK(max_relative_error({1.0f, -2.0f}, {1.0, -4.0}) == 0.5);  // max |diff| 2 over max |ref| 4
    CHECK(max_relative_error({0.5f}, {0.0}) == 0.5);               // a zero reference: the plain difference
    CHECK(std::isinf(max_relative_error({std::nanf("")}, {1.0})));  // an unwritten (NaN-poisoned) output
    CHECK(std::isinf(max_relative_error({1.0f}, {1.0, 2.0})));
    CHECK(max_relative_error({std::nanf(""), 2.0f}, {std::nan(""), 2.0}) == 0.0);

    for (const int64_t terms : {1, 16, 577, 1152, 131072})
        for (const double margin : {1.0, 4.0}) CHECK(float_sum_tolerance(terms, margin) == test::float_sum_tolerance(terms, margin));

    // CifarCNN's Conv(64→128, k3, p1) at batch 128 on 16×16: forward sums 64·9 + 1 = 577 terms, backward-data
    // 128·9 = 1152, backward-filter 128·16·16 = 32768, each with margin 4; cuDNN adds 256 terms' worth.
    const cpu::Conv2dGeometry g = conv2d_geometry_of(parse_shape("conv2d:N=128,C=64,H=16,W=16,OC=128,K=3,P=1"));
    CHECK(conv2d_tolerance(g, ConvPass::forward, false) == 4.0 * 577 * 0x1p-24);
    CHECK(conv2d_tolerance(g, ConvPass::backward_data, false) == 4.0 * 1152 * 0x1p-24);
    CHECK(conv2d_tolerance(g, ConvPass::backward_filter, false) == 4.0 * 32768 * 0x1p-24);
    CHECK(conv2d_tolerance(g, ConvPass::forward, true) == 4.0 * (577 + 256) * 0x1p-24);

    const Check worst = worst_check({{"a", 1e-7, 1e-6}, {"b", 5e-7, 1e-6}, {"c", 0.0, 0.0}});
    CHECK(worst.output == "b");
    CHECK(worst_check({{"a", 1e-7, 1e-6}, {"b", 2.0, 1.0}, {"c", 9.0, 1.0}}).output == "b");  // the first failure
    CHECK_FALSE(Check{"nan", std::nan(""), 1.0}.passed());
}

TEST_CASE("bench --shape: parsing, defaults, shorthands and the canonical text", "[bench]") {
    const OpCase conv = parse_shape("conv2d:N=128,C=3,H=32,W=32,OC=32,K=3,P=1");
    CHECK(conv.number("KH") == 3);
    CHECK(conv.number("KW") == 3);
    CHECK(conv.number("SH") == 1);
    CHECK(conv.number("PW") == 1);
    CHECK(conv.text("mode") == "zeros");
    CHECK(shape_text(conv) == "N=128,C=3,H=32,W=32,OC=32,K=3,P=1");
    const OpCase rect = parse_shape("conv2d:N=2,C=4,H=9,W=7,OC=6,KH=3,KW=5,S=2,PW=2,G=2,mode=reflect");
    CHECK(shape_text(rect) == "N=2,C=4,H=9,W=7,OC=6,KH=3,KW=5,S=2,PH=0,PW=2,G=2,mode=reflect");
    CHECK(parse_shape("conv2d:" + shape_text(rect)) == rect);
    const cpu::Conv2dGeometry g = conv2d_geometry_of(rect);
    CHECK(g.out_h == 4);  // (9 - 3) / 2 + 1
    CHECK(g.out_w == 4);  // (7 + 4 - 5) / 2 + 1

    const OpCase pool = parse_shape("max_pool2d:N=8,C=16,H=32,W=32,K=2");
    CHECK(pool.number("SH") == 2);  // the stride defaults to the window, as in PyTorch
    CHECK(shape_text(pool) == "N=8,C=16,H=32,W=32,K=2");
    CHECK(shape_text(parse_shape("max_pool2d:N=8,C=16,H=32,W=32,K=3,S=2")) == "N=8,C=16,H=32,W=32,K=3,S=2");
    CHECK(shape_text(parse_shape("relu:N=128,C=1024")) == "N=128,C=1024");
    CHECK(parse_shape("adam:P=5852170").number("P") == 5852170);  // P is adam's own key, not a padding pair

    using train::UsageError;
    CHECK_THROWS_AS(parse_shape("conv3d:N=1"), UsageError);
    CHECK_THROWS_WITH(parse_shape("conv3d:N=1"), Contains("unknown op 'conv3d'") && Contains("conv2d, batch_norm2d"));
    CHECK_THROWS_WITH(parse_shape("relu"), Contains("give the parameters after a colon"));
    CHECK_THROWS_WITH(parse_shape("relu:N=1,C=2,Q=3"), Contains("relu has no key 'Q'") && Contains("N, C, H, W"));
    CHECK_THROWS_WITH(parse_shape("linear:N=1,IN=4"), Contains("linear needs OUT"));
    CHECK_THROWS_WITH(parse_shape("linear:N=1,IN=4,OUT=x"), Contains("OUT=x is not a whole number"));
    CHECK_THROWS_WITH(parse_shape("conv2d:N=1,C=1,H=5,W=5,OC=1,K=3,P=-1"), Contains("PH=-1 must be at least 0"));
    CHECK_THROWS_WITH(parse_shape("relu:N=0,C=2"), Contains("N=0 must be at least 1"));
    CHECK_THROWS_WITH(parse_shape("relu:N=1,N=2,C=2"), Contains("N is given twice"));
    CHECK_THROWS_WITH(parse_shape("relu:N"), Contains("'N' is not KEY=VALUE"));
    CHECK_THROWS_WITH(parse_shape("conv2d:N=1,C=1,H=5,W=5,OC=1,K=3,mode=mirror"), Contains("use zeros, reflect"));
    // The reference's own geometry checks, without their file:line.
    CHECK_THROWS_WITH(parse_shape("conv2d:N=1,C=1,H=2,W=2,OC=1,K=5"), Contains("--shape conv2d:") && !Contains(".cpp:"));
    CHECK_THROWS_WITH(parse_shape("conv2d:N=1,C=3,H=5,W=5,OC=4,K=3,G=2"), Contains("multiples of G=2"));
}

TEST_CASE("bench augment cases: the OP key, each op's spec and the default list", "[bench]") {
    const OpCase old_form = parse_shape("augment:N=32");  // results files before OP keep their shape text
    CHECK(old_form.text("OP") == "default");
    CHECK(shape_text(old_form) == "N=32");
    const OpCase flip = parse_shape("augment:OP=hflip,N=2");
    CHECK(flip.text("OP") == "hflip");
    CHECK(flip.number("N") == 2);
    CHECK(shape_text(flip) == "OP=hflip,N=2");
    CHECK(parse_shape("augment:" + shape_text(flip)) == flip);

    // The default is the trainer's transform: crop + flip + CIFAR-10's normalize, which the fused kernel computes.
    const data::AugmentSpec trainer = augment_spec_of(old_form);
    CHECK(data::format_augment_spec(trainer) ==
          data::format_augment_spec(data::parse_augment_spec("crop:32:4,hflip,normalize:0.4914/0.4822/0.4465:"
                                                             "0.2023/0.1994/0.2010")));
    data::FusedCropFlip fused;
    REQUIRE(data::fused_crop_flip(trainer, {3, 32, 32}, &fused));
    CHECK(fused.crop_padding == 4);
    CHECK(fused.horizontal_flip);
    CHECK(fused.stddev == data::cifar10_normalization().stddev);

    // Every other entry is one op of its own name, valid on a 32×32 RGB image.
    for (const AugmentBenchOp& op : augment_bench_ops()) {
        if (std::string(op.name) == "default") continue;
        INFO(op.name);
        const data::AugmentSpec spec = augment_spec_of(parse_shape(fmt::format("augment:OP={},N=1", op.name)));
        REQUIRE(spec.size() == 1);
        const std::string text = data::format_augment_spec(spec);
        CHECK(text.substr(0, text.find(':')) == op.name);
        const data::ImageShape out = data::augment_shapes(spec, {3, 32, 32}).back();
        CHECK(out == (std::string(op.name) == "centercrop" ? data::ImageShape{3, 28, 28} : data::ImageShape{3, 32, 32}));
        // The fused pass computes crop, flip and normalize, each optional: normalize alone fuses too.
        CHECK(data::fused_crop_flip(spec, {3, 32, 32}, &fused) == (std::string(op.name) == "normalize"));
    }
    CHECK(augment_bench_ops().size() == 15);  // the default and the 14 kinds of AugmentKind

    // The default run's list: each op at Kornia's batch sizes 1, 32 and 128.
    const std::vector<OpCase> cases = augment_cases();
    REQUIRE(cases.size() == 3 * augment_bench_ops().size());
    CHECK(shape_text(cases[0]) == "N=1");
    CHECK(shape_text(cases[2]) == "N=128");
    CHECK(shape_text(cases[3]) == "OP=crop,N=1");
    CHECK(shape_text(cases.back()) == "OP=perspective,N=128");

    CHECK_THROWS_AS(parse_shape("augment:OP=blur,N=1"), train::UsageError);
    CHECK_THROWS_WITH(parse_shape("augment:OP=blur,N=1"),
                      Contains("--shape augment:OP=blur,N=1: OP=blur: unknown augmentation op") &&
                          Contains("default, crop, hflip") && Contains("perspective"));
    CHECK_THROWS_WITH(parse_shape("augment:OP=hflip"), Contains("augment needs N"));
    CHECK_THROWS_WITH(parse_shape("augment:OP=hflip,N=0"), Contains("N=0 must be at least 1"));
}

TEST_CASE("bench augment candidates on the CPU: the reference, and the fused pass checked against it", "[bench]") {
    Context context;
    context.algos = {"cpu", "kernel"};  // kernel rows: skipped here, as without a GPU
    context.no_gpu_reason = "GPU timings need a GPU (none in this test)";
    std::vector<Candidate> candidates = augment_candidates(parse_shape("augment:N=2"), context);
    std::vector<std::string> algorithms;
    for (const Candidate& c : candidates) algorithms.push_back(c.record.algorithm);
    CHECK(algorithms == std::vector<std::string>{"kernel", "fused", "cpu", "cpu_fused"});
    for (Candidate& c : candidates) {
        INFO(c.record.algorithm);
        const Record r = measure(c, context);
        if (c.record.device != "cpu") {
            CHECK(r.status == Status::skipped);
            CHECK_THAT(r.note, Contains("none in this test"));
            continue;
        }
        REQUIRE(r.status == Status::ok);
        CHECK(r.images_per_s > 0.0);
        CHECK(r.bytes == 2.0 * (3072 + 3072 * 4));  // uint8 images in, float batch out
        if (r.algorithm == "cpu_fused") CHECK(r.max_error == 0.0);  // the same floats, bit for bit
        if (r.algorithm == "cpu") CHECK_FALSE(r.max_error.has_value());  // the reference itself
    }
    // One op: no fused rows.
    CHECK(augment_candidates(parse_shape("augment:OP=jitter,N=1"), context).size() == 2);
}

TEST_CASE("bench cases of the CifarCNN: every distinct layer shape, the loss and the optimizer", "[bench]") {
    const graph::Graph graph = graph::build_graph(graph::builtin_model("cifar_cnn"));
    const std::vector<OpCase> cases = cases_from_graph(graph, 128, "adam");
    std::vector<std::string> texts;
    for (const OpCase& c : cases) texts.push_back(c.op + ":" + shape_text(c));
    const std::vector<std::string> expected = {
        "conv2d:N=128,C=3,H=32,W=32,OC=32,K=3,P=1",     "batch_norm2d:N=128,C=32,H=32,W=32",
        "relu:N=128,C=32,H=32,W=32",                    "conv2d:N=128,C=32,H=32,W=32,OC=64,K=3,P=1",
        "relu:N=128,C=64,H=32,W=32",                    "max_pool2d:N=128,C=64,H=32,W=32,K=2",
        "conv2d:N=128,C=64,H=16,W=16,OC=128,K=3,P=1",   "batch_norm2d:N=128,C=128,H=16,W=16",
        "relu:N=128,C=128,H=16,W=16",                   "conv2d:N=128,C=128,H=16,W=16,OC=128,K=3,P=1",
        "max_pool2d:N=128,C=128,H=16,W=16,K=2",         "conv2d:N=128,C=128,H=8,W=8,OC=256,K=3,P=1",
        "batch_norm2d:N=128,C=256,H=8,W=8",             "relu:N=128,C=256,H=8,W=8",
        "conv2d:N=128,C=256,H=8,W=8,OC=256,K=3,P=1",    "max_pool2d:N=128,C=256,H=8,W=8,K=2",
        "linear:N=128,IN=4096,OUT=1024",                "relu:N=128,C=1024",
        "linear:N=128,IN=1024,OUT=512",                 "relu:N=128,C=512",
        "linear:N=128,IN=512,OUT=10",                   "cross_entropy:N=128,C=10",
        "adam:P=5852170"};
    CHECK(texts == expected);
}

TEST_CASE("bench records: JSON and CSV share one schema", "[bench]") {
    Record r;
    r.op = "conv2d";
    r.shape = "N=128,C=3,H=32,W=32,OC=32,K=3,P=1";
    r.direction = "forward";
    r.algorithm = "im2col";
    r.device = "gpu";
    r.note = "a \"quoted\", noted\nline";
    r.repeats = 20;
    r.median_us = 12.5;
    r.flops = 1e9;
    r.max_error = 3e-7;
    const nlohmann::json j = to_json(r);
    CHECK(j["median_us"] == 12.5);
    CHECK(j["gbps"].is_null());
    CHECK(j.size() == record_fields().size());
    const Record back = record_from_json(j);
    CHECK(to_json(back) == j);

    CHECK(csv_header() == fmt::format("{}\n", fmt::join(record_fields(), ",")));
    CHECK(record_fields().front() == "op");
    const std::string row = csv_row(r);
    CHECK_THAT(row, !Contains("conv2d,N=128,C=3,H=32,W=32,OC=32,K=3,P=1,forward"));  // commas are quoted
    CHECK_THAT(row, Contains("conv2d,\"N=128,C=3,H=32,W=32,OC=32,K=3,P=1\",forward,im2col,gpu,ok,"));
    CHECK_THAT(row, Contains("\"a \"\"quoted\"\", noted\nline\",20,12.5,,,,1000000000,"));

    Report report;
    report.device = "cpu";
    report.records = {r, back};
    const Report read = report_from_json(to_json(report));
    CHECK(read.records.size() == 2);
    CHECK(to_json(read) == to_json(report));

    nlohmann::json missing = j;
    missing.erase("op");
    CHECK_THROWS_WITH(record_from_json(missing), Contains("field 'op' is missing"));
    nlohmann::json bad = j;
    bad["status"] = "fast";
    CHECK_THROWS_WITH(record_from_json(bad), Contains("status 'fast' is not one of"));
    bad = j;
    bad["median_us"] = "12";
    CHECK_THROWS_WITH(record_from_json(bad), Contains("field 'median_us' holds \"12\", not a number"));
    CHECK_THROWS_WITH(report_from_json(nlohmann::json{{"schema", "other/1"}}), Contains("not a 'cudacnn-bench/1' results file"));
    // The PyTorch side writes only what it measured: absent numbers read as null.
    const Record sparse = record_from_json(nlohmann::json{{"op", "conv2d"}, {"shape", "N=1"}, {"direction", "forward"},
                                                          {"algorithm", "torch_eager"}, {"device", "gpu"},
                                                          {"status", "ok"}, {"median_us", 3.0}});
    CHECK(sparse.median_us == 3.0);
    CHECK_FALSE(sparse.gflops.has_value());
}

TEST_CASE("bench flags: values, --quick's defaults and every complaint", "[bench]") {
    const BenchOptions d = parse_bench_args({}).options;
    CHECK(d.model == "cifar_cnn");
    CHECK(d.batch_size == 128);
    CHECK(d.repeats == 20);
    CHECK(d.warmup == 5);

    const BenchOptions q = parse_bench_args({"--quick"}).options;
    CHECK(q.batch_size == 8);
    CHECK(q.warmup == 1);
    CHECK(q.repeats == 2);
    CHECK(q.steps == 1);
    const BenchOptions qb = parse_bench_args({"--quick", "-b", "4", "--repeats=3"}).options;
    CHECK(qb.batch_size == 4);
    CHECK(qb.repeats == 3);

    const BenchOptions o = parse_bench_args({"--model", "small_cnn", "--algos", "direct,cpu", "--filter", "conv2d.*forward",
                                             "--json", "a.json", "--csv=b.csv", "--no-step", "--optimizer", "sgd"})
                               .options;
    CHECK(o.model == "small_cnn");
    CHECK(o.algos == std::vector<std::string>{"direct", "cpu"});
    CHECK(o.filter == "conv2d.*forward");
    CHECK(o.json_path == "a.json");
    CHECK(o.csv_path == "b.csv");
    CHECK_FALSE(o.step);
    CHECK(o.optimizer == "sgd");
    CHECK(parse_bench_args({"--repeats", "0", "--help"}).help);
    CHECK(d.cudnn_workspace_mib == -1);  // auto
    CHECK(parse_bench_args({"--cudnn-workspace-mib", "8192"}).options.cudnn_workspace_mib == 8192);
    CHECK(parse_bench_args({"--cudnn-workspace-mib", "auto"}).options.cudnn_workspace_mib == -1);

    using train::UsageError;
    CHECK_THROWS_AS(parse_bench_args({"--repeat", "3"}), UsageError);
    CHECK_THROWS_WITH(parse_bench_args({"--repeat", "3"}), Contains("unknown flag '--repeat'") && Contains("did you mean '--repeats'?"));
    CHECK_THROWS_WITH(parse_bench_args({"--repeats", "0"}), Contains("--repeats 0: must be at least 1"));
    CHECK_THROWS_WITH(parse_bench_args({"-b", "x"}), Contains("--batch-size x: not a whole number"));
    CHECK_THROWS_WITH(parse_bench_args({"--algos", "cudnn,fast"}), Contains("unknown algorithm 'fast'") && Contains("cudnn, direct"));
    CHECK_THROWS_WITH(parse_bench_args({"--filter", "(conv"}), Contains("--filter (conv: not a regular expression"));
    CHECK_THROWS_WITH(parse_bench_args({"--optimizer", "rmsprop"}), Contains("use adam, adamw or sgd"));
    CHECK_THROWS_WITH(parse_bench_args({"--json"}), Contains("--json needs a value"));
    CHECK_THROWS_WITH(parse_bench_args({"--cudnn-workspace-mib", "2097152"}),
                      Contains("--cudnn-workspace-mib 2097152: must be at most 1048576"));
    CHECK_THROWS_WITH(parse_bench_args({"extra"}), Contains("unexpected argument 'extra'"));
    CHECK_THROWS_WITH(parse_bench_args({"--shape", "relu:N=2"}), Contains("relu needs C"));
    CHECK_THROWS_WITH(parse_bench_args({"--shape", "relu:N=2,C=3", "-b", "4"}), Contains("does not take --model or --batch-size"));
}

TEST_CASE("bench measure: a wrong implementation is reported and never timed", "[bench]") {
    Context context;
    context.options.warmup = 5;
    context.options.repeats = 20;
    int64_t calls = 0;

    Candidate wrong;
    wrong.record = base_record(parse_shape("relu:N=2,C=3"), "forward", "kernel", "cpu");
    wrong.check = [] { return std::vector<Check>{{"y", 0.0, 0.0}, {"dx", 0.25, 1e-6}}; };
    wrong.run = [&](int64_t) { ++calls; };
    const Record w = measure(wrong, context);
    CHECK(w.status == Status::wrong);
    CHECK_THAT(w.note, Contains("dx differs from the CPU reference") && Contains("not timed"));
    CHECK(w.max_error == 0.25);
    CHECK_FALSE(w.median_us.has_value());
    CHECK(calls == 0);

    Candidate nan_output = wrong;
    nan_output.check = [] { return std::vector<Check>{{"y", std::numeric_limits<double>::infinity(), 1e-5}}; };
    CHECK(measure(nan_output, context).status == Status::wrong);

    Candidate good = wrong;
    good.check = [] { return std::vector<Check>{{"y", 1e-7, 1e-6}}; };
    good.record.bytes = 1e6;
    const Record g = measure(good, context);
    CHECK(g.status == Status::ok);
    // On the CPU: at most 1 warm-up and 3 timed calls (the reference is slow), each counted once.
    CHECK(calls == 1 + 3);
    CHECK(g.repeats == 3);
    CHECK(g.median_us.has_value());
    CHECK(g.gbps.has_value());

    Candidate failing = good;
    failing.run = [](int64_t) { throw std::runtime_error("launch failed: out of resources"); };
    const Record f = measure(failing, context);
    CHECK(f.status == Status::failed);
    CHECK_THAT(f.note, Contains("out of resources"));

    Candidate unsupported = good;
    unsupported.unsupported = "cuDNN is not part of the emu flavour";
    CHECK(measure(unsupported, context).status == Status::unsupported);

    std::vector<Record> records(3, g);
    records[0].op = records[1].op = records[2].op = "conv2d";
    records[0].algorithm = "cudnn";
    records[0].median_us = 10.0;
    records[1].median_us = 25.0;
    records[2].direction = "backward_data";
    add_vendor_ratios(records);
    CHECK(records[0].ratio_to_vendor == 1.0);
    CHECK(records[1].ratio_to_vendor == 2.5);
    CHECK_FALSE(records[2].ratio_to_vendor.has_value());  // no cuDNN row for that direction
}
