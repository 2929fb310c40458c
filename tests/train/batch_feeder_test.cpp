// The batch feeder: on the GPU backend the device pipeline gives the host pipeline's batches (the same logits
// from the same weights) and training steps fed by it copy nothing from the host.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "src/train/batch_feeder.hpp"
#include "support/compare.hpp"

using namespace cudacnn;

namespace {

graph::ExecutorOptions gpu_options() {
    graph::ExecutorOptions options;
    options.backend = graph::Backend::gpu;
    options.batch_size = 6;
    return options;
}

}  // namespace

TEST_CASE("the device pipeline feeds the host pipeline's batches and steps copy nothing from the host",
          "[train][gpu]") {
    if (!gpu_status().available) {
        WARN("skipped: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const data::Dataset train = data::make_synthetic({20, 4, 5}).train;
    const graph::Graph graph = graph::build_graph(graph::builtin_model("small_cnn"));
    const data::Normalization normalization = data::cifar10_normalization();
    const data::Augmentation augmentation;
    const std::vector<int64_t> order = data::epoch_order(train.size(), true, 5, 2);

    graph::Executor fed(graph, gpu_options()), copied(graph, gpu_options());
    fed.initialize(8);
    copied.initialize(8);
    const data::AugmentSpec transform = data::with_normalization(data::default_augment_spec(), normalization.mean,
                                                                 normalization.stddev);
    train::BatchFeeder feeder(train, fed, normalization, transform);
    REQUIRE(feeder.on_device());
    feeder.set_order(order);

    std::vector<float> x(6 * 3 * 32 * 32);
    std::vector<int64_t> labels(6);
    for (int64_t first : {0, 6, 12, 18}) {
        const int64_t count = std::min<int64_t>(6, train.size() - first);  // the last batch holds 2
        INFO("records " << first << " to " << first + count - 1);
        reset_transfer_stats();
        feeder.feed(first, count, true, 5, 2);
        fed.eval_step();
        CHECK(transfer_stats().host_to_device_calls == 0);
        data::assemble_batch(train, order.data() + first, count, &augmentation, normalization, 5, 2, first, x.data(),
                             labels.data());
        copied.set_batch(x.data(), labels.data(), count);
        copied.eval_step();
        CHECK(test::max_relative_error(fed.logits(), copied.logits()) == 0.0);
        CHECK(feeder.labels(first, count) == std::vector<int64_t>(labels.begin(), labels.begin() + count));
    }
    CHECK(fed.read_metrics().correct == copied.read_metrics().correct);

    reset_transfer_stats();
    for (int64_t step = 0; step < 3; ++step) {
        feeder.feed(6 * step, 6, true, 5, 2);
        fed.train_step(fed.optimizer_steps());
    }
    CHECK(transfer_stats().host_to_device_calls == 0);
    CHECK(transfer_stats().device_to_host_calls == 0);
    CHECK_THROWS_WITH(feeder.feed(18, 3, false, 5, 2), Catch::Contains("records 18 to 20 of an order of 20"));
}

TEST_CASE("any augmentation spec: the device pipeline feeds the CPU reference's batches, copying nothing",
          "[train][gpu]") {
    if (!gpu_status().available) {
        WARN("skipped: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const data::Dataset train = data::make_synthetic({12, 4, 5}).train;
    const graph::Graph graph = graph::build_graph(graph::builtin_model("small_cnn"));
    const data::Normalization normalization = data::cifar10_normalization();
    const data::AugmentSpec transform =
        data::with_normalization(data::parse_augment_spec("crop:32:4:reflect,hflip,affine:10:0.1,jitter:0.2:0.2:0.2:0.05,"
                                                          "erasing:0.5:0.02-0.2:0.3-3.3:random"),
                                 normalization.mean, normalization.stddev);
    const std::vector<int64_t> order = data::epoch_order(train.size(), true, 5, 1);
    graph::Executor on_device(graph, gpu_options()), on_host(graph, [] {
        graph::ExecutorOptions o = gpu_options();
        o.backend = graph::Backend::cpu;
        return o;
    }());
    train::BatchFeeder device_feeder(train, on_device, normalization, transform);
    train::BatchFeeder host_feeder(train, on_host, normalization, transform);
    CHECK_THAT(device_feeder.describe(), Catch::Contains("a kernel per op"));
    CHECK_THAT(host_feeder.describe(), Catch::Contains("on the host (the CPU reference)"));
    device_feeder.set_order(order);
    host_feeder.set_order(order);
    reset_transfer_stats();
    device_feeder.feed(6, 6, true, 5, 1);
    CHECK(transfer_stats().host_to_device_calls == 0);
    host_feeder.feed(6, 6, true, 5, 1);
    const graph::Executor::InputBuffers input = on_device.input_buffers();
    const std::vector<float> device_x =
        download<float>(input.images, 6 * 3 * 32 * 32, static_cast<cudaStream_t>(input.stream));
    std::vector<float> host_x(6 * 3 * 32 * 32);
    std::vector<int64_t> labels(6);
    data::augment_batch(train.images.data(), train.labels.data(), {3, 32, 32}, order.data() + 6, 6, transform, 5, 1, 6,
                        host_x.data(), labels.data());
    double worst = 0.0;
    for (size_t i = 0; i < host_x.size(); ++i) worst = std::max(worst, std::fabs(double(device_x[i]) - host_x[i]));
    CHECK(worst <= 1e-5);  // the augmentation parity tolerance (tests/ops/augment_parity_test.cpp)
    CHECK(device_feeder.labels(6, 6) == labels);

    // A transform must give the model's input shape.
    CHECK_THROWS_WITH(train::BatchFeeder(train, on_host, normalization, data::parse_augment_spec("centercrop:24")),
                      Catch::Contains("turns the 3x32x32 images of synthetic train into 3x24x24 images, but they must "
                                      "stay 3x32x32 (the model's input); end the spec with a crop, centercrop or "
                                      "resizedcrop to 32"));
    // A batch larger than the executor's is refused before anything is written.
    train::BatchFeeder host_batches(train, on_host, normalization, transform);
    host_batches.set_order(order);
    CHECK_THROWS_WITH(host_batches.feed(0, 7, true, 5, 1), Catch::Contains("a batch of 7 records; the executor takes 6"));
}
