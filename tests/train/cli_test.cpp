// The cudacnn-train program itself: one CifarCNN step through the whole command line (CIFAR-10 files,
// --init-weights, --no-augment --no-dropout --no-shuffle, --export) against the PyTorch fixture, its exit
// codes, and the data options (--augment, --dataset imagefolder, --cifar100-labels coarse) on tiny data.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "support/cifar_cnn.hpp"
#include "support/images.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::test::cifar_cnn;
namespace fs = std::filesystem;

namespace {

struct Outcome {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

Outcome run_train(const std::string& args, const fs::path& folder) {
    const fs::path log = folder / "log.txt";
    const std::string command = std::string(CUDACNN_TRAIN_BINARY) + " " + args + " > " + log.string() + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream file(log);
    std::stringstream text;
    text << file.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

// CIFAR-10's binary layout: per record a label byte and 3072 pixel bytes (R, G, B planes).
void write_cifar10_records(const fs::path& path, const HostTensor<int64_t>& images, const HostTensor<int64_t>& labels,
                           int64_t count) {
    std::ofstream file(path, std::ios::binary);
    for (int64_t n = 0; n < count; ++n) {
        const int64_t i = n % labels.numel();
        file.put(static_cast<char>(labels[i]));
        for (int64_t k = 0; k < 3072; ++k) file.put(static_cast<char>(images[i * 3072 + k]));
    }
}

}  // namespace

TEST_CASE("one CifarCNN step through cudacnn-train's command line matches PyTorch", "[cli][cifar_cnn]") {
    const StepFixture fixture;
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    const HostTensor<int64_t> images = fixture.file.get<int64_t>("images");
    const int64_t n = fixture.labels.numel();
    // The fixture's batch is the first n training records; the other files only need to be valid.
    write_cifar10_records(folder / "data_batch_1.bin", images, fixture.labels, n);
    for (int b = 2; b <= 5; ++b) write_cifar10_records(folder / fmt::format("data_batch_{}.bin", b), images, fixture.labels, 1);
    write_cifar10_records(folder / "test_batch.bin", images, fixture.labels, n);

    // The fixture's initial weights (cudacnn's default initialization from its seed) and fresh BN buffers.
    const Model<float> initial = initial_model(fixture.seed);
    io::StateDict init;
    for (const std::string& name : initial.names) {
        init.put(name, initial[name]);
        const std::string layer = name.substr(0, name.rfind('.'));
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0 && initial.running.count(layer)) {
            const auto& r = initial.running.at(layer);
            init.put(layer + ".running_mean", r.running_mean);
            init.put(layer + ".running_var", r.running_var);
            init.put(layer + ".num_batches_tracked", HostTensor<int64_t>(Shape{}, std::vector<int64_t>{0}));
        }
    }
    io::save_state_dict(init, (folder / "init.safetensors").string());

    const Outcome run = run_train(fmt::format("--model cifar_cnn --dataset cifar10 --data {} --epochs 1 -b {} "
                                              "--limit-train {} --limit-test {} --no-augment --no-dropout --no-shuffle "
                                              "--lr 1e-4 --device cpu --init-weights {} --export {} --output-dir {}",
                                              folder.string(), n, n, n, (folder / "init.safetensors").string(),
                                              (folder / "after.safetensors").string(), (folder / "runs").string()),
                                  folder);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains("Epoch: 1 | Loss: ") && Catch::Contains("exported: "));

    // The exported state after the step against PyTorch's, with the CPU reference's float bound (1e-5, see
    // tests/cpu/cifar_cnn_step_test.cpp): the command line adds the data path (u8 → ToTensor → Normalize).
    const io::StateDict after = io::load_state_dict((folder / "after.safetensors").string());
    const SafetensorsFile& file = fixture.file;
    constexpr double kTolerance = 1e-5;
    for (const std::string& name : initial.names) {
        INFO("after the step: " << name);
        check_update(sample(initial[name], fixture.sample_size), sample(after.f32(name), fixture.sample_size),
                     file.get<double>("param_after." + name), file.get<double>("grad." + name),
                     bias_cancelled_by_batch_norm(name), fixture.adam.lr, kTolerance, kTolerance);
    }
    for (const auto& [layer, running] : initial.running) {
        INFO(layer);
        CHECK(test::max_relative_error(after.f32(layer + ".running_mean"), file.get<double>("running_mean." + layer)) <= kTolerance);
        CHECK(test::max_relative_error(after.f32(layer + ".running_var"), file.get<double>("running_var." + layer)) <= kTolerance);
        CHECK(after.i64(layer + ".num_batches_tracked")[0] == 1);
    }
}

TEST_CASE("cudacnn-train: --help exits 0, a bad flag or value exits 2 with a message", "[cli]") {
    const test::TempDir temp;  // removed afterwards, also when a check fails
    const fs::path folder = temp.path();
    const Outcome help = run_train("--help", folder);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("--batch-size") && Catch::Contains("--resume"));
    const Outcome unknown = run_train("--batch-sise 4", folder);
    CHECK(unknown.exit_code == 2);
    CHECK_THAT(unknown.output, Catch::Contains("--batch-sise"));
    const Outcome bad_value = run_train("--epochs zero", folder);
    CHECK(bad_value.exit_code == 2);
    CHECK_THAT(bad_value.output, Catch::Contains("--epochs"));
    const Outcome missing_data = run_train("--dataset cifar10 --data " + (folder / "nowhere").string(), folder);
    CHECK(missing_data.exit_code == 1);
    CHECK_THAT(missing_data.output, Catch::Contains("nowhere") && Catch::Contains("cifar"));
    io::StateDict weights;
    weights.put("w", HostTensor<float>(Shape{2}, 1.0f));
    io::save_state_dict(weights, (folder / "weights.safetensors").string());
    const Outcome weights_as_checkpoint = run_train("--resume " + (folder / "weights.safetensors").string(), folder);
    CHECK(weights_as_checkpoint.exit_code == 1);
    CHECK_THAT(weights_as_checkpoint.output, Catch::Contains("not a cudacnn checkpoint") && Catch::Contains("--init-weights"));
}

namespace {

// The quick CPU run of the data-option cases: small_cnn, one epoch, batches of 8, checkpoints in
// `folder`/run.
std::string quick_run(const fs::path& folder) {
    return fmt::format("--model small_cnn --device cpu --epochs 1 -b 8 --log-every 1 --output-dir {}",
                       (folder / "run").string());
}

nlohmann::json checkpoint_options(const fs::path& folder) {
    return io::load_checkpoint((folder / "run" / "checkpoint-epoch-001.safetensors").string())
        .meta.at("options");
}

}  // namespace

TEST_CASE(
    "cudacnn-train: --augment as text or FILE.json reaches the run and its checkpoint; bad specs exit 2",
    "[cli][augment]") {
    const test::TempDir temp;
    const fs::path folder = temp.path();
    const std::string text = "crop:32:2:reflect,hflip,jitter:0.3";
    const std::string canonical = "crop:32:2:reflect:0,hflip:0.5,jitter:0.7-1.3:1-1:1-1:0-0";
    const fs::path spec_file = folder / "spec.json";
    std::ofstream(spec_file) << data::augment_spec_to_json(data::parse_augment_spec(text)).dump();
    const Outcome run =
        run_train(quick_run(folder) + " --synthetic-size 16,8 --augment " + spec_file.string(), folder);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains("augment_spec     " + canonical + "\n"));
    CHECK_THAT(run.output, Catch::Contains("Epoch: 1 |"));
    CHECK(checkpoint_options(folder).at("augment_spec") == canonical);  // the content, not the file's name

    const Outcome bad_token = run_train("--augment crop:32,blur:3", folder);
    CHECK(bad_token.exit_code == 2);
    CHECK_THAT(bad_token.output,
               Catch::Contains("--augment crop:32,blur:3") && Catch::Contains("bad token \"blur\""));
    const Outcome both = run_train("--augment hflip --no-augment", folder);
    CHECK(both.exit_code == 2);
    CHECK_THAT(both.output, Catch::Contains("--augment hflip:0.5 and --no-augment both given"));
    const Outcome missing = run_train("--augment " + (folder / "none.json").string(), folder);
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.output, Catch::Contains((folder / "none.json").string() + ": cannot open the file"));
    const Outcome coarse_alone = run_train("--cifar100-labels coarse", folder);
    CHECK(coarse_alone.exit_code == 2);
    CHECK_THAT(coarse_alone.output,
               Catch::Contains("--cifar100-labels coarse goes with --dataset cifar100 only"));
}

TEST_CASE("cudacnn-train: --dataset imagefolder trains on DIR/train and tests on DIR/test",
          "[cli][imagefolder]") {
    const test::TempDir temp;
    const fs::path folder = temp.path(), images = folder / "pictures";
    // small_cnn's 10 classes; 40×30 pictures, which the loader fits to the model's 32×32.
    for (int label = 0; label < 10; ++label) {
        for (const auto& [split, count] : {std::pair<const char*, int>{"train", 2}, {"test", 1}}) {
            const fs::path dir = images / split / fmt::format("class{}", label);
            fs::create_directories(dir);
            for (int i = 0; i < count; ++i)
                test::write_solid_png((dir / fmt::format("{}.png", i)).string(), 40, 30,
                                      static_cast<uint8_t>(25 * label), static_cast<uint8_t>(60 * i), 128);
        }
    }
    const Outcome run =
        run_train(quick_run(folder) + " --dataset imagefolder --data " + images.string(), folder);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output,
               Catch::Contains(fmt::format("dataset: {} (20 images) and {} (10 images), 10 classes",
                                           (images / "train").string(), (images / "test").string())));
    CHECK_THAT(run.output, Catch::Contains("Epoch: 1 |"));
    CHECK(checkpoint_options(folder).at("dataset") == "imagefolder");

    // A folder without class folders is the loader's error (exit 1), naming the folder.
    fs::create_directories(folder / "empty");
    const Outcome empty = run_train(
        quick_run(folder / "second") + " --dataset imagefolder --data " + (folder / "empty").string(),
        folder);
    CHECK(empty.exit_code == 1);
    CHECK_THAT(empty.output, Catch::Contains((folder / "empty").string() + ": no class subfolders"));
}

TEST_CASE("cudacnn-train: --cifar100-labels coarse trains a 20-class model on CIFAR-100's coarse labels",
          "[cli][cifar100]") {
    const test::TempDir temp;
    const fs::path folder = temp.path();
    const auto write = [&](const char* name, int records) {
        std::ofstream file(folder / name, std::ios::binary);
        for (int r = 0; r < records; ++r) {
            file.put(static_cast<char>(r % 20));  // coarse
            file.put(static_cast<char>(99 - r));  // fine
            for (int k = 0; k < 3072; ++k) file.put(static_cast<char>((r * 37 + k) % 251));
        }
    };
    write("train.bin", 16);
    write("test.bin", 8);
    // small_cnn with a 20-way last layer.
    nlohmann::json model = graph::model_spec_to_json(graph::builtin_model("small_cnn"));
    model["name"] = "small_cnn_20";
    model["num_classes"] = 20;
    model["layers"].back()["out_features"] = 20;
    std::ofstream(folder / "small_cnn_20.json") << model.dump(2);

    const std::string data = " --dataset cifar100 --data " + folder.string() + " --model " +
                             (folder / "small_cnn_20.json").string();
    const Outcome run = run_train(quick_run(folder) + data + " --cifar100-labels coarse", folder);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(
        run.output,
        Catch::Contains(
            "dataset: cifar100 coarse train (16 images) and cifar100 coarse test (8 images), 20 classes"));
    CHECK_THAT(run.output, Catch::Contains("cifar100_labels  coarse\n"));
    CHECK(checkpoint_options(folder).at("cifar100_labels") == "coarse");
    // The fine labels do not fit the 20-way model: the model/dataset check says so (exit 1).
    const Outcome fine = run_train(quick_run(folder / "fine") + data, folder);
    CHECK(fine.exit_code == 1);
    CHECK_THAT(fine.output,
               Catch::Contains("has 20 outputs but the dataset 'cifar100 train' has 100 classes"));
}
