// The training loop of cudacnn-train: the seed's recipe and log line on the graph executor.
#include "cudacnn/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/train/setup.hpp"
#include "src/train/batch_feeder.hpp"
#include "src/train/confusion.hpp"
#include "src/train/metrics_log.hpp"
#include "src/train/progress.hpp"

namespace cudacnn::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kCheckpointFormat = "cudacnn-checkpoint";
constexpr int kCheckpointVersion = 1;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

graph::OptimizerConfig optimizer_config(const TrainOptions& o) {
    graph::OptimizerConfig config;
    config.lr = o.lr;
    config.momentum = o.momentum;
    switch (o.optimizer) {
        case OptimizerKind::adam: config.kind = graph::OptimizerKind::adam; break;
        case OptimizerKind::adamw: config.kind = graph::OptimizerKind::adamw; break;
        case OptimizerKind::sgd: config.kind = graph::OptimizerKind::sgd; break;
    }
    config.weight_decay = effective_weight_decay(o);
    return config;
}

// The run's training transform: --augment's spec (by default the seed's RandomCrop(H, padding=4) +
// RandomHorizontalFlip, a flip alone for images that are not square), then the run's Normalize
// (run_normalization) unless the spec normalizes itself; empty with --no-augment.
data::AugmentSpec training_transform(const TrainOptions& o, const data::Dataset& train,
                                     const data::Normalization& normalization) {
    if (!o.augment) return {};
    data::AugmentSpec spec;
    if (!o.augment_spec.empty()) {
        spec = data::parse_augment_spec(o.augment_spec);
    } else {
        spec = data::parse_augment_spec(train.height == train.width ? fmt::format("crop:{}:4,hflip", train.height)
                                                                    : std::string("hflip"));
    }
    return data::with_normalization(std::move(spec), normalization.mean, normalization.stddev);
}

// Everything one run holds.
class Run {
  public:
    Run(const TrainOptions& options, std::ostream& out)
        : o_(options),
          out_(out),
          spec_(resolve_model(options.model)),
          graph_(graph::build_graph(spec_)),
          data_(load_splits(options, spec_)),
          normalization_(run_normalization(options)) {
        check_classes(spec_, data_.train);
        graph::ExecutorOptions e;
        e.backend = choose_backend(o_.device);
        e.batch_size = o_.batch_size;
        e.conv_algo = o_.conv_algo;
        e.threads = o_.threads;
        e.optimizer = optimizer_config(o_);
        e.label_smoothing = o_.label_smoothing;
        e.dropout = o_.dropout;
        e.cuda_graph = o_.cuda_graph;
        e.seed = o_.seed;
        executor_ = std::make_unique<graph::Executor>(graph_, e);
        train_feeder_ = std::make_unique<BatchFeeder>(data_.train, *executor_, normalization_,
                                                      training_transform(o_, data_.train, normalization_));
        test_feeder_ = std::make_unique<BatchFeeder>(data_.test, *executor_, normalization_);
        std::vector<int64_t> in_order(static_cast<std::size_t>(data_.test.size()));
        for (int64_t i = 0; i < data_.test.size(); ++i) in_order[i] = i;
        test_feeder_->set_order(std::move(in_order));
    }

    TrainSummary run();

  private:
    void print_header();
    void check_same_recipe(const nlohmann::json& saved) const;
    void prepare_outputs() const;
    void restore_or_initialize();
    graph::Metrics train_epoch(int64_t epoch);
    graph::Metrics test_epoch(Confusion* confusion);
    std::string checkpoint_path(int64_t epoch) const;
    void refuse_to_overwrite_checkpoints() const;
    void save_checkpoint(int64_t epoch);
    void write_export();

    TrainOptions o_;
    std::ostream& out_;
    graph::ModelSpec spec_;
    graph::Graph graph_;
    data::Splits data_;
    data::Normalization normalization_;
    std::unique_ptr<graph::Executor> executor_;
    std::unique_ptr<BatchFeeder> train_feeder_, test_feeder_;
    int64_t first_epoch_ = 1;
    double best_accuracy_ = 0.0;
    int64_t best_epoch_ = 0;
};

void Run::print_header() {
    out_ << "cudacnn-train\n" << describe(o_) << "\n";
    out_ << fmt::format("dataset: {} ({} images) and {} ({} images), {} classes\n", data_.train.name,
                        data_.train.size(), data_.test.name, data_.test.size(), data_.train.num_classes);
    out_ << graph::model_summary(graph_);
    for (const std::string& line : executor_->describe()) out_ << line << "\n";
    out_ << train_feeder_->describe() << "\n";
    const std::string note = auto_device_note(o_.device, executor_->options().backend);
    if (!note.empty()) out_ << note << "\n";
    out_.flush();
}

// A resumed run continues exactly only with the settings that shaped the checkpoint's run (the data order,
// augmentation, dropout masks and optimizer depend on them): refuse, listing every difference.
void Run::check_same_recipe(const nlohmann::json& saved) const {
    static const char* const kRecipe[] = {"dataset",   "synthetic_size", "limit_train",  "augment",
                                          "augment_spec", "shuffle", "batch_size", "lr",
                                          "optimizer", "momentum", "weight_decay", "lr_schedule",
                                          "label_smoothing", "dropout", "seed", "cifar100_labels"};
    const nlohmann::json now = to_json(o_), defaults = to_json(TrainOptions{});
    std::string differences;
    for (const char* key : kRecipe) {
        // A setting newer than the checkpoint had its default then.
        const nlohmann::json before = saved.contains(key) ? saved.at(key) : defaults.value(key, nlohmann::json());
        if (before != now.value(key, nlohmann::json())) {
            differences += fmt::format("\n  {}: the checkpoint's run had {}, this one has {}", key, before.dump(),
                                       now.value(key, nlohmann::json()).dump());
        }
    }
    CUDACNN_CHECK(differences.empty(),
                  "--resume {}: these settings differ from the run that wrote it, so it could not continue that run "
                  "exactly; pass the same values:{}", o_.resume, differences);
}

// Problems with where results go show before training, not after hours of it.
void Run::prepare_outputs() const {
    const auto writable_folder = [](const fs::path& folder, const std::string& flag) {
        std::error_code error;
        if (!folder.empty()) fs::create_directories(folder, error);
        const fs::path probe = (folder.empty() ? fs::path(".") : folder) / ".cudacnn-write-probe";
        std::ofstream file(probe);
        CUDACNN_CHECK(!error && file.good(), "{} {}: cannot create or write to this folder{}", flag, folder.string(),
                      error ? " (" + error.message() + ")" : std::string());
        file.close();
        fs::remove(probe, error);
    };
    writable_folder(o_.output_dir, "--output-dir");
    if (!o_.export_path.empty()) writable_folder(fs::path(o_.export_path).parent_path(), "--export");
}

void Run::restore_or_initialize() {
    executor_->initialize(o_.seed);
    if (!o_.init_weights.empty()) {
        executor_->load_model_state(io::load_state_dict(o_.init_weights), o_.init_weights);
        out_ << "weights: " << o_.init_weights << "\n";
    }
    if (o_.resume.empty()) return;
    // A weights file (an --export, a PyTorch state_dict) is a common mix-up: say which flag takes it.
    CUDACNN_CHECK(SafetensorsFile::read(o_.resume).metadata().count("cudacnn.checkpoint") != 0,
                  "--resume {}: this file holds weights but no training state (not a cudacnn checkpoint); start "
                  "from its weights with --init-weights {}, or resume from a checkpoint-epoch-NNN.safetensors",
                  o_.resume, o_.resume);
    const io::Checkpoint checkpoint = io::load_checkpoint(o_.resume);
    CUDACNN_CHECK(checkpoint.meta.value("format", "") == kCheckpointFormat,
                  "--resume {}: not a cudacnn checkpoint (its metadata has no \"format\": \"{}\")", o_.resume,
                  kCheckpointFormat);
    CUDACNN_CHECK(checkpoint.meta.value("version", 0) == kCheckpointVersion,
                  "--resume {}: checkpoint format version {}, this cudacnn-train reads version {}", o_.resume,
                  checkpoint.meta.value("version", 0), kCheckpointVersion);
    check_same_recipe(checkpoint.meta.at("options"));
    CUDACNN_CHECK(checkpoint.meta.at("model") == graph::model_spec_to_json(spec_),
                  "--resume {}: the checkpoint is of model '{}', not of '{}'; pass the same --model", o_.resume,
                  checkpoint.meta.at("model").value("name", "?"), spec_.name);
    executor_->load_model_state(checkpoint.model, o_.resume);
    executor_->load_optimizer_state(checkpoint.optimizer, o_.resume);
    first_epoch_ = checkpoint.meta.at("epoch").get<int64_t>() + 1;
    best_accuracy_ = checkpoint.meta.value("best_test_accuracy", 0.0);
    best_epoch_ = checkpoint.meta.value("best_epoch", int64_t{0});
    out_ << fmt::format("resumed: {} after epoch {} ({} optimizer steps)\n", o_.resume, first_epoch_ - 1,
                        executor_->optimizer_steps());
    CUDACNN_CHECK(o_.evaluate_only || first_epoch_ <= o_.epochs,
                  "--resume {}: the run already finished epoch {} and --epochs is {}; raise --epochs to train on, "
                  "or add --evaluate", o_.resume, first_epoch_ - 1, o_.epochs);
}

graph::Metrics Run::train_epoch(int64_t epoch) {
    const data::Dataset& train = data_.train;
    train_feeder_->set_order(data::epoch_order(train.size(), o_.shuffle, o_.seed, epoch));
    const int64_t batches = (train.size() + o_.batch_size - 1) / o_.batch_size;
    Progress progress(out_, epoch, batches, o_.log_every);
    graph::Metrics total;
    for (int64_t b = 0; b < batches; ++b) {
        const int64_t first = b * o_.batch_size;
        const int64_t count = std::min(o_.batch_size, train.size() - first);
        train_feeder_->feed(first, count, o_.augment, o_.seed, epoch);
        executor_->train_step(executor_->optimizer_steps());
        if (progress.due(b + 1)) {
            const graph::Metrics m = executor_->read_metrics();  // the periodic read-back
            total.batches += m.batches;
            total.samples += m.samples;
            total.loss_sum += m.loss_sum;
            total.correct += m.correct;
            progress.report(b + 1, total);
        }
    }
    progress.finish();
    return total;
}

graph::Metrics Run::test_epoch(Confusion* confusion) {
    const int64_t size = data_.test.size();
    for (int64_t first = 0; first < size; first += o_.batch_size) {
        const int64_t count = std::min(o_.batch_size, size - first);
        test_feeder_->feed(first, count, false, o_.seed, 0);
        executor_->eval_step();
        if (confusion != nullptr) confusion->add(executor_->logits(), test_feeder_->labels(first, count).data());
    }
    return executor_->read_metrics();
}

std::string Run::checkpoint_path(int64_t epoch) const {
    return (fs::path(o_.output_dir) / fmt::format("checkpoint-epoch-{:03}.safetensors", epoch)).string();
}

// A run never replaces a checkpoint that is already there (an earlier run's, or a later epoch of the run being
// resumed): it says so before training rather than after hours of it.
void Run::refuse_to_overwrite_checkpoints() const {
    for (int64_t epoch = first_epoch_; epoch <= o_.epochs; ++epoch) {
        const bool saves = epoch == o_.epochs || (o_.save_every > 0 && epoch % o_.save_every == 0);
        const std::string path = checkpoint_path(epoch);
        CUDACNN_CHECK(!saves || !fs::exists(path),
                      "--output-dir {}: {} is already there and this run would replace it; choose another "
                      "--output-dir (or move the file away)", o_.output_dir, path);
    }
}

void Run::save_checkpoint(int64_t epoch) {
    fs::create_directories(o_.output_dir);
    const std::string path = checkpoint_path(epoch);
    io::Checkpoint checkpoint{executor_->model_state(), executor_->optimizer_state(), nlohmann::json::object()};
    checkpoint.meta = {{"format", kCheckpointFormat},       {"version", kCheckpointVersion},
                       {"epoch", epoch},                    {"model", graph::model_spec_to_json(spec_)},
                       {"options", to_json(o_)},            {"best_test_accuracy", best_accuracy_},
                       {"best_epoch", best_epoch_},         {"optimizer_steps", executor_->optimizer_steps()}};
    io::save_checkpoint(checkpoint, path);
    out_ << "checkpoint: " << path << "\n";
}

void Run::write_export() {
    if (o_.export_path.empty()) return;
    const io::FloatStorage storage = o_.export_dtype == "f16"    ? io::FloatStorage::f16
                                     : o_.export_dtype == "bf16" ? io::FloatStorage::bf16
                                                                 : io::FloatStorage::f32;
    io::save_state_dict(executor_->model_state(), o_.export_path, storage, {{"model", spec_.name}});
    out_ << "exported: " << o_.export_path << " (PyTorch state_dict names, " << io::safetensors_dtype(storage) << ")\n";
}

TrainSummary Run::run() {
    print_header();
    restore_or_initialize();
    TrainSummary summary;
    Confusion confusion(spec_.num_classes);
    if (o_.evaluate_only) {
        const graph::Metrics test = test_epoch(&confusion);
        out_ << fmt::format("Evaluation | Loss: {:.4f} | Test accuracy: {:.3f}%\n", test.mean_loss(),
                            test.accuracy_percent());
        summary.final_test_accuracy = summary.best_test_accuracy = test.accuracy_percent();
        summary.confusion = confusion.counts();
        out_ << confusion.format(data_.test.class_names);
        write_export();  // e.g. a checkpoint's weights as a state_dict, or F32 weights as BF16
        return summary;
    }
    refuse_to_overwrite_checkpoints();
    prepare_outputs();
    // A resumed run adds its epochs to the metrics file rather than erasing the earlier ones.
    MetricsLog metrics_log(o_.metrics_path, o_.metrics_format, /*append=*/!o_.resume.empty());
    for (int64_t epoch = first_epoch_; epoch <= o_.epochs; ++epoch) {
        const auto start = Clock::now();
        const double lr = lr_at_epoch(o_.lr_schedule, o_.lr, epoch - 1, o_.epochs);
        executor_->set_learning_rate(lr);
        const graph::Metrics train = train_epoch(epoch);
        const double train_seconds = seconds_since(start);
        const bool last = epoch == o_.epochs;
        confusion.reset();
        const graph::Metrics test = test_epoch(last ? &confusion : nullptr);
        const double seconds = seconds_since(start);
        if (test.accuracy_percent() > best_accuracy_ || best_epoch_ == 0) {
            best_accuracy_ = test.accuracy_percent();
            best_epoch_ = epoch;
        }
        out_ << fmt::format("Epoch: {} | Loss: {:.4f} | Training accuracy: {:.3f}% | Test accuracy: {:.3f}% | "
                            "Epoch Time: {:.2f} secs\n",
                            epoch, train.mean_loss(), train.accuracy_percent(), test.accuracy_percent(), seconds);
        out_.flush();
        metrics_log.write({epoch, train.mean_loss(), train.accuracy_percent(), test.mean_loss(),
                           test.accuracy_percent(), seconds, lr, train.samples / std::max(train_seconds, 1e-9)});
        if (last || (o_.save_every > 0 && epoch % o_.save_every == 0)) save_checkpoint(epoch);
        summary.epochs_run += 1;
        summary.final_test_accuracy = test.accuracy_percent();
        summary.final_train_loss = train.mean_loss();
    }
    write_export();
    summary.best_test_accuracy = best_accuracy_;
    summary.best_epoch = best_epoch_;
    summary.confusion = confusion.counts();
    out_ << fmt::format("Best test accuracy: {:.3f}% (epoch {})\n", best_accuracy_, best_epoch_);
    if (summary.epochs_run > 0) out_ << confusion.format(data_.test.class_names);
    return summary;
}

}  // namespace

TrainSummary run_training(const TrainOptions& options, std::ostream& out) {
    Run run(options, out);
    return run.run();
}

int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ParsedArgs parsed;
    return program_main(
        "cudacnn-train", [&] { return !(parsed = parse_train_args(args)).help; }, train_usage,
        [&] {
            run_training(parsed.options, out);
            return 0;
        },
        out, err);
}

}  // namespace cudacnn::train
