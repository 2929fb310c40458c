// The batch feeder: on the GPU backend the device pipeline gives the host pipeline's batches (the same logits
// from the same weights) and training steps fed by it copy nothing from the host.
#include <catch2/catch.hpp>

#include <vector>

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
    train::BatchFeeder feeder(train, fed, normalization);
    REQUIRE(feeder.on_device());
    feeder.set_order(order);

    std::vector<float> x(6 * 3 * 32 * 32);
    std::vector<int64_t> labels(6);
    for (int64_t first : {0, 6, 12, 18}) {
        const int64_t count = std::min<int64_t>(6, train.size() - first);  // the last batch holds 2
        INFO("records " << first << " to " << first + count - 1);
        reset_transfer_stats();
        feeder.feed(first, count, &augmentation, 5, 2);
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
        feeder.feed(6 * step, 6, &augmentation, 5, 2);
        fed.train_step(fed.optimizer_steps());
    }
    CHECK(transfer_stats().host_to_device_calls == 0);
    CHECK(transfer_stats().device_to_host_calls == 0);
    CHECK_THROWS_WITH(feeder.feed(18, 3, nullptr, 5, 2), Catch::Contains("records 18 to 20 of an order of 20"));
}
