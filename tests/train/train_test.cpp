// cudacnn-train end to end: the synthetic dataset learned on the CPU and on the (emulated or real) GPU
// kernels, resuming bit for bit, the seed's log line, and a short run on the real CIFAR-10 when present.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "cudacnn/device.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/train/trainer.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::train;
namespace fs = std::filesystem;

namespace {

TrainOptions synthetic_options(const fs::path& folder) {
    TrainOptions o = parse_train_args({"--model", "small_cnn", "--dataset", "synthetic", "--epochs", "3", "--lr", "2e-3",
                                       "-b", "32", "--synthetic-size", "2000,500", "--seed", "5", "--device", "cpu",
                                       "--output-dir", folder.string(), "--save-every", "0"})
                         .options;
    return o;
}

// The seed's line, exactly: `Epoch: 1 | Loss: 1.5168 | Training accuracy: 56.276% | Test accuracy: 57.460% | Epoch Time: 61.60 secs`.
const std::regex kEpochLine(R"(Epoch: \d+ \| Loss: \d+\.\d{4} \| Training accuracy: \d+\.\d{3}% \| Test accuracy: \d+\.\d{3}% \| Epoch Time: \d+\.\d{2} secs)");

int count_epoch_lines(const std::string& log) {
    std::istringstream lines(log);
    int count = 0;
    for (std::string line; std::getline(lines, line);) count += std::regex_match(line, kEpochLine) ? 1 : 0;
    return count;
}

}  // namespace

TEST_CASE("the synthetic dataset is learned well above chance in 3 epochs on the CPU", "[train][e2e]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    std::ostringstream log;
    const TrainSummary summary = run_training(synthetic_options(folder), log);
    INFO(log.str());
    CHECK(summary.epochs_run == 3);
    CHECK(summary.final_test_accuracy >= 50.0);  // chance is 10%
    CHECK(count_epoch_lines(log.str()) == 3);
    CHECK_THAT(log.str(), Catch::Contains("Total params: 11,690") && Catch::Contains("Best test accuracy") &&
                              Catch::Contains("Confusion matrix"));
    CHECK(fs::exists(folder / "checkpoint-epoch-003.safetensors"));
}

TEST_CASE("the synthetic dataset is learned well above chance in 3 epochs on the GPU kernels", "[train][e2e][gpu]") {
    if (!gpu_status().available) {
        WARN("skipped: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = synthetic_options(folder);
    o.device = DeviceChoice::cuda;
    std::ostringstream log;
    const TrainSummary summary = run_training(o, log);
    INFO(log.str());
    CHECK(summary.final_test_accuracy >= 50.0);
    CHECK(count_epoch_lines(log.str()) == 3);
    CHECK_THAT(log.str(), Catch::Contains("device: gpu"));
}

TEST_CASE("two epochs straight equal one epoch, a resume and one more, bit for bit", "[train][e2e]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = synthetic_options(folder);
    o.epochs = 2;
    o.synthetic_train_size = 256;
    o.synthetic_test_size = 64;
    o.save_every = 1;
    o.export_path = (folder / "straight.safetensors").string();
    std::ostringstream log;
    run_training(o, log);

    const fs::path resumed_folder = folder / "resumed";
    TrainOptions first = o;
    first.epochs = 1;
    first.output_dir = resumed_folder.string();
    first.export_path.clear();
    run_training(first, log);
    TrainOptions second = o;
    second.output_dir = resumed_folder.string();
    second.resume = (resumed_folder / "checkpoint-epoch-001.safetensors").string();
    second.export_path = (folder / "resumed.safetensors").string();
    run_training(second, log);
    INFO(log.str());

    const io::StateDict straight = io::load_state_dict((folder / "straight.safetensors").string());
    const io::StateDict resumed = io::load_state_dict((folder / "resumed.safetensors").string());
    REQUIRE(straight.names() == resumed.names());
    for (const std::string& name : straight.names()) {
        INFO(name);
        if (straight.dtype(name) == DType::i64) {
            CHECK(straight.i64(name).values() == resumed.i64(name).values());
        } else {
            CHECK(straight.f32(name).values() == resumed.f32(name).values());  // bit for bit
        }
    }
    // The checkpoints of both runs after epoch 2 are equal too, optimizer state included.
    const io::Checkpoint a = io::load_checkpoint((folder / "checkpoint-epoch-002.safetensors").string());
    const io::Checkpoint b = io::load_checkpoint((resumed_folder / "checkpoint-epoch-002.safetensors").string());
    for (const std::string& name : a.optimizer.names()) {
        INFO(name);
        if (a.optimizer.dtype(name) == DType::f32) CHECK(a.optimizer.f32(name).values() == b.optimizer.f32(name).values());
    }
}

TEST_CASE("a short CPU run on the real CIFAR-10 trains and logs the seed's lines", "[train][e2e][cifar10]") {
    const char* dir = std::getenv("CUDACNN_CIFAR10_DIR");
    if (dir == nullptr || *dir == '\0') {
        WARN("skipped: set CUDACNN_CIFAR10_DIR to a folder with CIFAR-10's binary version to run this test");
        return;
    }
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = parse_train_args({"--model", "small_cnn", "--dataset", "cifar10", "--data", dir, "--epochs", "1",
                                       "--limit-train", "2000", "--limit-test", "1000", "--lr", "2e-3", "-b", "64",
                                       "--device", "cpu", "--output-dir", folder.string(), "--metrics",
                                       (folder / "metrics.csv").string()})
                         .options;
    std::ostringstream log;
    const TrainSummary summary = run_training(o, log);
    INFO(log.str());
    CHECK(count_epoch_lines(log.str()) == 1);
    CHECK_THAT(log.str(), Catch::Contains("cifar10 train (2000 images)"));
    CHECK(summary.final_test_accuracy > 15.0);  // one short epoch already beats chance (10%) clearly
    std::ifstream metrics(folder / "metrics.csv");
    std::string header, row;
    std::getline(metrics, header);
    std::getline(metrics, row);
    CHECK_THAT(header, Catch::StartsWith("epoch,train_loss,train_accuracy"));
    CHECK_THAT(row, Catch::StartsWith("1,"));
}

TEST_CASE("a run refuses to replace checkpoints that are already there", "[train]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = synthetic_options(folder);
    o.epochs = 1;
    o.synthetic_train_size = 32;
    o.synthetic_test_size = 16;
    std::ostringstream log;
    run_training(o, log);
    const auto written = fs::last_write_time(folder / "checkpoint-epoch-001.safetensors");
    CHECK_THROWS_WITH(run_training(o, log), Catch::Contains("checkpoint-epoch-001.safetensors is already there") &&
                                                Catch::Contains("--output-dir"));
    CHECK(fs::last_write_time(folder / "checkpoint-epoch-001.safetensors") == written);
}

TEST_CASE("a resume refuses other settings and adds its epochs to the metrics file", "[train]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = synthetic_options(folder);
    o.epochs = 1;
    o.synthetic_train_size = 32;
    o.synthetic_test_size = 16;
    o.metrics_path = (folder / "metrics.csv").string();
    std::ostringstream log;
    run_training(o, log);
    TrainOptions resumed = o;
    resumed.epochs = 2;
    resumed.resume = (folder / "checkpoint-epoch-001.safetensors").string();
    TrainOptions other_seed = resumed;
    other_seed.seed = 6;
    CHECK_THROWS_WITH(run_training(other_seed, log), Catch::Contains("seed: the checkpoint's run had 5, this one has 6"));
    TrainOptions other_augment = resumed;
    other_augment.augment_spec = "hflip:0.5";
    CHECK_THROWS_WITH(run_training(other_augment, log),
                      Catch::Contains("augment_spec: the checkpoint's run had null, this one has \"hflip:0.5\""));
    TrainOptions finished = resumed;
    finished.epochs = 1;
    CHECK_THROWS_WITH(run_training(finished, log), Catch::Contains("already finished epoch 1") &&
                                                       Catch::Contains("raise --epochs"));
    run_training(resumed, log);
    std::ifstream metrics(folder / "metrics.csv");
    std::vector<std::string> lines;
    for (std::string line; std::getline(metrics, line);) lines.push_back(line);
    REQUIRE(lines.size() == 3);  // one header, epochs 1 and 2
    CHECK_THAT(lines[1], Catch::StartsWith("1,"));
    CHECK_THAT(lines[2], Catch::StartsWith("2,"));
}

TEST_CASE("--augment: a spec trains on the CPU reference and on the device kernels, the same batches", "[train][e2e][gpu]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    TrainOptions o = synthetic_options(folder);
    o.epochs = 1;
    o.synthetic_train_size = 64;
    o.synthetic_test_size = 32;
    o.augment_spec = "crop:32:4:reflect:0,hflip:0.5,rotation:-10-10:bilinear:0,jitter:0.8-1.2:0.8-1.2:1-1:0-0";
    std::ostringstream cpu_log;
    const TrainSummary on_cpu = run_training(o, cpu_log);
    INFO(cpu_log.str());
    CHECK_THAT(cpu_log.str(), Catch::Contains("data: training batches go through \"" + o.augment_spec +
                                              ",normalize:0.4914/0.4822/0.4465:0.2023/0.1994/0.201\" on the host"));
    CHECK(count_epoch_lines(cpu_log.str()) == 1);
    if (!gpu_status().available) {
        WARN("skipped the device half: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const test::TempDir temp2;
    o.output_dir = temp2.path();
    o.device = DeviceChoice::cuda;
    std::ostringstream gpu_log;
    const TrainSummary on_gpu = run_training(o, gpu_log);
    INFO(gpu_log.str());
    CHECK_THAT(gpu_log.str(), Catch::Contains("on the device (both sets kept there as uint8, copied once), a kernel per op"));
    // The same augmented batches and the same model: the two backends' losses agree to float rounding.
    CHECK(std::abs(on_gpu.final_train_loss - on_cpu.final_train_loss) < 1e-3);
}
