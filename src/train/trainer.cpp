// The training loop of cudacnn-train: the seed's recipe and log line on the graph executor.
#include "cudacnn/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/error_text.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/train/setup.hpp"
#include "src/train/batch_feeder.hpp"
#include "src/train/checkpoint_files.hpp"
#include "src/train/confusion.hpp"
#include "src/train/data_parallel.hpp"
#include "src/train/interrupt.hpp"
#include "src/train/metrics_log.hpp"
#include "src/train/output_space.hpp"
#include "src/train/progress.hpp"

namespace cudacnn::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kCheckpointFormat = "cudacnn-checkpoint";
// Version 2 adds "in_epoch" (a checkpoint taken within an epoch); version-1 checkpoints (epoch ends) still resume.
constexpr int kCheckpointVersion = 2;
// A data-parallel run asks every rank whether a signal arrived this often (a collective: the world stops at the
// same step); a single process checks after every step.
constexpr int64_t kInterruptPollSteps = 10;

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
    Run(const TrainOptions& options, const dist::LaunchInfo& launch, std::ostream& out, const TrainHooks& hooks)
        : o_(options),
          out_(out),
          hooks_(hooks),
          spec_(resolve_model(options.model)),
          graph_(graph::build_graph(spec_)),
          data_(load_splits(options, spec_)),
          normalization_(run_normalization(options)) {
        check_classes(spec_, data_.train);
        graph::ExecutorOptions e;
        e.backend = choose_backend(o_.device);
        parallel_ = start_data_parallel(o_, launch, e.backend);  // before the executor: NCCL picks this rank's GPU
        e.communicator = parallel_.communicator;
        e.sync_batch_norm = o_.sync_bn;
        e.batch_size = o_.batch_size;
        e.conv_algo = o_.conv_algo;
        e.precision = o_.precision;
        e.memory_format = o_.memory_format;
        e.gemm = o_.gemm;
        e.cudnn_benchmark = o_.cudnn_benchmark;
        e.cudnn_workspace_limit_bytes = graph::cudnn_workspace_limit_from_mib(o_.cudnn_workspace_mib);
        e.threads = o_.threads;
        e.optimizer = optimizer_config(o_);
        e.label_smoothing = o_.label_smoothing;
        e.dropout = o_.dropout;
        e.cuda_graph = o_.cuda_graph;
        e.detect_anomaly = o_.detect_anomaly;
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
    void check_same_recipe(const nlohmann::json& saved, int64_t saved_world) const;
    void prepare_outputs() const;
    // Every --save-every epochs and after the last one.
    bool saves_checkpoint(int64_t epoch) const {
        return epoch == o_.epochs || (o_.save_every > 0 && epoch % o_.save_every == 0);
    }
    std::uintmax_t checkpoint_bytes() const;
    void restore_or_initialize();
    void restore_position(const nlohmann::json& meta);
    void share_start();
    ShardPlan train_plan() const {
        return ShardPlan(data_.train.size(), o_.batch_size, parallel_.world_size(), parallel_.rank());
    }
    bool world_interrupted_now() const { return world_interrupted(parallel_, pending_interrupt() != 0); }
    // Steps between progress reports. Each report reads the world's metrics (a collective), so in a data-parallel
    // run every rank takes rank 0's interval, which depends on whether its output is a terminal (the others'
    // output is dropped).
    int64_t report_interval(int64_t batches) const {
        int64_t every = o_.log_every;
        if (parallel_.communicator == nullptr || every > 0) return every;
        every = Progress(out_, 0, batches, 0).every();
        parallel_.communicator->broadcast_host(&every, sizeof(every), 0);
        return every;
    }
    graph::Metrics train_epoch(int64_t epoch, int64_t& stopped_after);
    graph::Metrics test_epoch(Confusion* confusion);
    std::string checkpoint_path(const CheckpointPosition& position) const;
    void refuse_to_overwrite_checkpoints() const;
    void save_checkpoint(int64_t epoch, int64_t step = 0, const graph::Metrics& partial = {});
    void stop_for_interrupt(TrainSummary& summary, int64_t epoch, int64_t step);
    void write_export();

    TrainOptions o_;
    std::ostream& out_;
    TrainHooks hooks_;
    graph::ModelSpec spec_;
    graph::Graph graph_;
    data::Splits data_;
    data::Normalization normalization_;
    DataParallel parallel_;  // outlives the executor, which uses its communicator
    std::unique_ptr<graph::Executor> executor_;
    std::unique_ptr<BatchFeeder> train_feeder_, test_feeder_;
    int64_t first_epoch_ = 1;
    int64_t resume_batch_ = 0;         // where first_epoch_ starts: after this many of its batches
    graph::Metrics resume_metrics_;    // first_epoch_'s training metrics before resume_batch_
    std::string last_checkpoint_;
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
    if (parallel_.communicator != nullptr) {
        const ShardPlan plan = train_plan();
        out_ << fmt::format("data-parallel: {} processes x batch {} = {} records per step, {} steps per epoch{}; "
                            "rank 0 logs, evaluates and writes checkpoints\n",
                            parallel_.world_size(), o_.batch_size, parallel_.world_size() * o_.batch_size,
                            plan.steps(),
                            plan.padded_size() > data_.train.size()
                                ? fmt::format(" (the last step repeats {} records of the epoch's start so that "
                                              "every process gets as many)", plan.padded_size() - data_.train.size())
                                : std::string());
    }
    const std::string note = auto_device_note(o_.device, executor_->options().backend);
    if (!note.empty()) out_ << note << "\n";
    out_.flush();
}

// A resumed run continues exactly only with the settings that shaped the checkpoint's run (the data order,
// augmentation, dropout masks and optimizer depend on them): refuse, listing every difference.
// The batch of the recipe is the world's (records per step): a run may resume with another number of processes
// and a per-process batch that keeps it.
void Run::check_same_recipe(const nlohmann::json& saved, int64_t saved_world) const {
    static const char* const kRecipe[] = {"dataset",   "synthetic_size", "limit_train",  "augment",
                                          "augment_spec", "shuffle", "lr",
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
    const int64_t saved_batch = saved.value("batch_size", defaults.at("batch_size").get<int64_t>());
    if (saved_batch * saved_world != o_.batch_size * parallel_.world_size()) {
        differences += fmt::format("\n  records per step (batch_size x processes): the checkpoint's run had {} ({} x {}), "
                                   "this one has {} ({} x {})", saved_batch * saved_world, saved_batch, saved_world,
                                   o_.batch_size * parallel_.world_size(), o_.batch_size, parallel_.world_size());
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
    int64_t checkpoints = 0;
    for (int64_t epoch = first_epoch_; epoch <= o_.epochs; ++epoch) {
        if (saves_checkpoint(epoch)) ++checkpoints;
    }
    const std::string warning = check_output_space(o_.output_dir, checkpoint_bytes(), checkpoints, "--output-dir");
    if (!warning.empty()) out_ << warning << "\n";
}

// About how large one checkpoint is: the model's and the optimizer's tensors, plus room for the header (the
// model spec and options as JSON).
std::uintmax_t Run::checkpoint_bytes() const {
    std::uintmax_t bytes = 64 * 1024;
    for (const io::StateDict& state : {executor_->model_state(), executor_->optimizer_state()}) {
        for (const std::string& name : state.names()) {
            bytes += static_cast<std::uintmax_t>(state.shape(name).numel()) * dtype_size(state.dtype(name));
        }
    }
    return bytes;
}

void Run::restore_or_initialize() {
    executor_->initialize(o_.seed);
    if (!parallel_.is_root()) return share_start();  // rank 0 reads the files and hands the state on
    if (!o_.init_weights.empty()) {
        executor_->load_model_state(io::load_state_dict(o_.init_weights), o_.init_weights);
        out_ << "weights: " << o_.init_weights << "\n";
    }
    if (o_.resume.empty()) return share_start();
    // A weights file (an --export, a PyTorch state_dict) is a common mix-up: say which flag takes it. A file
    // that does not read at all gets load_checkpoint's Error (damaged, resume from the previous checkpoint).
    bool has_training_state = true;
    try {
        has_training_state = SafetensorsFile::read(o_.resume).metadata().count("cudacnn.checkpoint") != 0;
    } catch (const Error&) {
    }
    CUDACNN_CHECK(has_training_state,
                  "--resume {}: this file holds weights but no training state (not a cudacnn checkpoint); start "
                  "from its weights with --init-weights {}, or resume from a checkpoint-epoch-NNN.safetensors",
                  o_.resume, o_.resume);
    const io::Checkpoint checkpoint = io::load_checkpoint(o_.resume);
    CUDACNN_CHECK(checkpoint.meta.value("format", "") == kCheckpointFormat,
                  "--resume {}: not a cudacnn checkpoint (its metadata has no \"format\": \"{}\")", o_.resume,
                  kCheckpointFormat);
    const int version = checkpoint.meta.value("version", 0);
    CUDACNN_CHECK(version >= 1 && version <= kCheckpointVersion,
                  "--resume {}: checkpoint format version {}, this cudacnn-train reads versions 1 to {}; resume "
                  "with the cudacnn-train that wrote it, or from a checkpoint this one wrote",
                  o_.resume, version, kCheckpointVersion);
    if (!checkpoint.checksum_verified) {
        out_ << fmt::format("note: {} is an older checkpoint without a checksum, so its contents could not be "
                            "verified\n", o_.resume);
    }
    check_same_recipe(checkpoint.meta.at("options"), checkpoint.meta.value("world_size", int64_t{1}));
    CUDACNN_CHECK(checkpoint.meta.at("model") == graph::model_spec_to_json(spec_),
                  "--resume {}: the checkpoint is of model '{}', not of '{}'; pass the same --model", o_.resume,
                  checkpoint.meta.at("model").value("name", "?"), spec_.name);
    executor_->load_model_state(checkpoint.model, o_.resume);
    executor_->load_optimizer_state(checkpoint.optimizer, o_.resume);
    restore_position(checkpoint.meta);
    best_accuracy_ = checkpoint.meta.value("best_test_accuracy", 0.0);
    best_epoch_ = checkpoint.meta.value("best_epoch", int64_t{0});
    const std::string where = resume_batch_ == 0 ? fmt::format("after epoch {}", first_epoch_ - 1)
                                                 : fmt::format("in epoch {} after batch {}", first_epoch_,
                                                               resume_batch_);
    out_ << fmt::format("resumed: {} {} ({} optimizer steps)\n", o_.resume, where, executor_->optimizer_steps());
    CUDACNN_CHECK(o_.evaluate_only || first_epoch_ <= o_.epochs,
                  "--resume {}: the run already finished epoch {} and --epochs is {}; raise --epochs to train on, "
                  "or add --evaluate", o_.resume, first_epoch_ - 1, o_.epochs);
    share_start();
}

// A data-parallel run starts every rank where rank 0 starts: its model and optimizer state (initialized, loaded
// from --init-weights or --resume) and its place in training.
void Run::share_start() {
    if (parallel_.communicator == nullptr) return;
    struct Start {
        int64_t first_epoch, resume_batch, batches, samples, correct, best_epoch;
        double loss_sum, best_accuracy;
    } start{first_epoch_, resume_batch_, resume_metrics_.batches, resume_metrics_.samples, resume_metrics_.correct,
            best_epoch_, resume_metrics_.loss_sum, best_accuracy_};
    parallel_.communicator->broadcast_host(&start, sizeof(start), 0);
    first_epoch_ = start.first_epoch;
    resume_batch_ = start.resume_batch;
    resume_metrics_ = graph::Metrics{start.batches, start.samples, start.loss_sum, start.correct};
    best_epoch_ = start.best_epoch;
    best_accuracy_ = start.best_accuracy;
    executor_->replicate_from(0);
}

// Where the checkpoint's run stopped: after epoch "epoch", or within "in_epoch" (a run interrupted there) with
// that epoch's training metrics so far, so that the resumed epoch's log line counts all of its batches.
void Run::restore_position(const nlohmann::json& meta) {
    first_epoch_ = meta.at("epoch").get<int64_t>() + 1;
    if (!meta.contains("in_epoch")) return;
    const nlohmann::json& in_epoch = meta.at("in_epoch");
    const int64_t batches = train_plan().steps();
    first_epoch_ = in_epoch.at("epoch").get<int64_t>();
    resume_batch_ = in_epoch.at("next_batch").get<int64_t>();
    // The checkpoint's run may have had another number of processes, but the same records per step (the recipe
    // check), so its steps are this run's.
    CUDACNN_CHECK(resume_batch_ > 0 && resume_batch_ < batches && first_epoch_ >= 1,
                  "--resume {}: the checkpoint stopped at batch {} of epoch {}, which has {} batches here; the file "
                  "is damaged: resume from the previous checkpoint",
                  o_.resume, resume_batch_, first_epoch_, batches);
    resume_metrics_.batches = in_epoch.at("metric_batches").get<int64_t>();
    resume_metrics_.samples = in_epoch.at("samples").get<int64_t>();
    resume_metrics_.loss_sum = in_epoch.at("loss_sum").get<double>();
    resume_metrics_.correct = in_epoch.at("correct").get<int64_t>();
}

// One epoch's training from where it starts (batch 0, or resume_batch_ in a resumed epoch). On SIGINT or SIGTERM
// it finishes the step under way, writes a checkpoint of the epoch so far and sets `stopped_after` to the
// batches done (it stays 0 for an epoch run to its end).
graph::Metrics Run::train_epoch(int64_t epoch, int64_t& stopped_after) {
    const data::Dataset& train = data_.train;
    const ShardPlan plan = train_plan();
    train_feeder_->set_order(plan.pad(data::epoch_order(train.size(), o_.shuffle, o_.seed, epoch)));
    const int64_t batches = plan.steps();
    const bool resumed_epoch = epoch == first_epoch_ && resume_batch_ > 0;
    Progress progress(out_, epoch, batches, report_interval(batches));
    graph::Metrics total = resumed_epoch ? resume_metrics_ : graph::Metrics{};
    for (int64_t b = resumed_epoch ? resume_batch_ : 0; b < batches; ++b) {
        const Shard shard = plan.shard(b);
        train_feeder_->feed(shard.first, shard.count, o_.augment, o_.seed, epoch);
        executor_->train_step(executor_->optimizer_steps());
        if (hooks_.after_step) hooks_.after_step(epoch, b + 1);
        // The last batch ends the epoch as usual; the run stops after it (see run()).
        const bool poll = parallel_.communicator == nullptr || (b + 1) % kInterruptPollSteps == 0;
        const bool stop = b + 1 < batches && poll && world_interrupted_now();
        if (progress.due(b + 1) || stop) {
            // The periodic read-back, of the whole world's batches.
            const graph::Metrics m = world_metrics(parallel_, executor_->read_metrics());
            total.batches += m.batches;
            total.samples += m.samples;
            total.loss_sum += m.loss_sum;
            total.correct += m.correct;
            if (progress.due(b + 1)) progress.report(b + 1, total);
        }
        if (stop) {
            progress.finish();
            save_checkpoint(epoch, b + 1, total);
            stopped_after = b + 1;
            return total;
        }
    }
    progress.finish();
    return total;
}

graph::Metrics Run::test_epoch(Confusion* confusion) {
    if (!parallel_.is_root()) return {};  // rank 0 alone evaluates
    const int64_t size = data_.test.size();
    for (int64_t first = 0; first < size; first += o_.batch_size) {
        const int64_t count = std::min(o_.batch_size, size - first);
        test_feeder_->feed(first, count, false, o_.seed, 0);
        executor_->eval_step();
        if (confusion != nullptr) confusion->add(executor_->logits(), test_feeder_->labels(first, count).data());
    }
    return executor_->read_metrics();
}

std::string Run::checkpoint_path(const CheckpointPosition& position) const {
    return (fs::path(o_.output_dir) / checkpoint_file_name(position)).string();
}

// A run never replaces a checkpoint that is already there (an earlier run's, or a later one of the run being
// resumed): any checkpoint in --output-dir from past the point where this run starts would be in the way, so it
// says so before training rather than after hours of it. Writers' leftover temporaries are not checkpoints.
void Run::refuse_to_overwrite_checkpoints() const {
    // Where this run starts: within first_epoch_, or at the end of the epoch before it.
    const CheckpointPosition start = resume_batch_ > 0 ? CheckpointPosition{first_epoch_, resume_batch_}
                                                       : CheckpointPosition{first_epoch_ - 1, 0};
    std::error_code error;
    std::vector<std::string> in_the_way, temporaries;
    for (const auto& entry : fs::directory_iterator(o_.output_dir, error)) {
        const std::string name = entry.path().filename().string();
        const auto position = parse_checkpoint_file_name(name);
        if (position && start < *position) in_the_way.push_back(entry.path().string());
        if (name.rfind("checkpoint-", 0) == 0 && name.find(".safetensors.tmp-") != std::string::npos)
            temporaries.push_back(name);
    }
    if (!temporaries.empty()) {
        out_ << fmt::format("note: {} holds {} unfinished checkpoint write(s) of a process that was killed (e.g. {}); "
                            "they are not checkpoints and are ignored, and may be deleted\n",
                            o_.output_dir, temporaries.size(), temporaries.front());
    }
    std::sort(in_the_way.begin(), in_the_way.end());
    CUDACNN_CHECK(in_the_way.empty(),
                  "--output-dir {}: {} is already there and this run would replace it{}; choose another "
                  "--output-dir (or move the file away)", o_.output_dir, in_the_way.empty() ? "" : in_the_way[0],
                  in_the_way.size() > 1 ? fmt::format(" ({} checkpoints from later in training)", in_the_way.size())
                                        : std::string());
}

// After `epoch`, or within it after `step` of its batches with its training metrics so far.
void Run::save_checkpoint(int64_t epoch, int64_t step, const graph::Metrics& partial) {
    if (!parallel_.is_root()) return;  // rank 0 alone writes (every replica holds the same state)
    fs::create_directories(o_.output_dir);
    const std::string path = checkpoint_path({epoch, step});
    io::Checkpoint checkpoint{executor_->model_state(), executor_->optimizer_state(), nlohmann::json::object()};
    checkpoint.meta = {{"format", kCheckpointFormat},       {"version", kCheckpointVersion},
                       {"epoch", step == 0 ? epoch : epoch - 1},
                       {"model", graph::model_spec_to_json(spec_)},
                       {"options", to_json(o_)},            {"best_test_accuracy", best_accuracy_},
                       {"best_epoch", best_epoch_},         {"optimizer_steps", executor_->optimizer_steps()},
                       {"world_size", parallel_.world_size()}};
    if (step != 0) {
        checkpoint.meta["in_epoch"] = {{"epoch", epoch},           {"next_batch", step},
                                       {"metric_batches", partial.batches}, {"samples", partial.samples},
                                       {"loss_sum", partial.loss_sum},     {"correct", partial.correct}};
    }
    io::save_checkpoint(checkpoint, path);
    last_checkpoint_ = path;
    out_ << "checkpoint: " << path << "\n";
}

void Run::stop_for_interrupt(TrainSummary& summary, int64_t epoch, int64_t step) {
    // A rank the signal did not reach stops with the world as if it had been terminated.
    summary.interrupted_by_signal = pending_interrupt() != 0 ? pending_interrupt() : SIGTERM;
    summary.last_checkpoint = last_checkpoint_;
    out_ << fmt::format("interrupted by {} {}; saved {}\n", interrupt_signal_name(summary.interrupted_by_signal),
                        step == 0 ? fmt::format("after epoch {}", epoch)
                                  : fmt::format("in epoch {} after batch {}", epoch, step),
                        last_checkpoint_);
    out_.flush();
}

void Run::write_export() {
    if (o_.export_path.empty() || !parallel_.is_root()) return;
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
    if (parallel_.is_root()) {
        refuse_to_overwrite_checkpoints();
        prepare_outputs();
    }
    const InterruptGuard interrupt_guard;  // from here on SIGINT/SIGTERM stop the run with a checkpoint
    // A resumed run adds its epochs to the metrics file rather than erasing the earlier ones.
    MetricsLog metrics_log(parallel_.is_root() ? o_.metrics_path : std::string(), o_.metrics_format,
                           /*append=*/!o_.resume.empty());
    for (int64_t epoch = first_epoch_; epoch <= o_.epochs; ++epoch) {
        const auto start = Clock::now();
        const double lr = lr_at_epoch(o_.lr_schedule, o_.lr, epoch - 1, o_.epochs);
        executor_->set_learning_rate(lr);
        int64_t stopped_after = 0;
        const graph::Metrics train = train_epoch(epoch, stopped_after);
        if (stopped_after != 0) {
            stop_for_interrupt(summary, epoch, stopped_after);
            return summary;
        }
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
        const bool saves = saves_checkpoint(epoch);
        // A signal during the epoch's last batch or its test pass stops the run once the epoch is saved.
        const bool interrupted = world_interrupted_now();
        if (saves || interrupted) save_checkpoint(epoch);
        summary.epochs_run += 1;
        summary.final_test_accuracy = test.accuracy_percent();
        summary.final_train_loss = train.mean_loss();
        if (interrupted && !last) {
            stop_for_interrupt(summary, epoch, 0);
            return summary;
        }
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

TrainSummary run_training(const TrainOptions& options, std::ostream& out, const TrainHooks& hooks) {
    clear_interrupt();
    const dist::LaunchInfo launch = hooks.launch ? *hooks.launch : dist::detect_launch();
    std::ostream quiet(nullptr);  // ranks other than 0 log nothing (writes to it are dropped)
    try {
        Run run(options, launch, launch.rank == 0 ? out : quiet, hooks);
        return run.run();
    } catch (const Error& error) {
        // A rank that fails alone would leave the others waiting in a collective forever: under mpirun every
        // process ends here (torchrun's agent ends the others when this one exits).
        if (launch.world_size <= 1 || options.distributed == "off" || launch.launcher != "mpirun" ||
            !dist::mpi_built()) {
            throw;
        }
        out.flush();
        std::cerr << fmt::format("cudacnn-train (rank {} of {}): error: {}\nending every process of the run\n",
                                 launch.rank, launch.world_size, without_location(error));
        std::cerr.flush();
        dist::mpi_world().abort(1);
        throw;  // not reached: abort ends the process
    }
}

std::string resume_command(const std::vector<std::string>& args, const std::string& checkpoint) {
    const auto quoted = [](const std::string& word) {
        const bool plain = !word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                                   "0123456789_-+=.,:/@%") == std::string::npos;
        if (plain) return word;
        std::string out = "'";
        for (const char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return out + "'";
    };
    std::string command = "cudacnn-train";
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--resume") {
            ++i;  // and its value
            continue;
        }
        if (args[i].rfind("--resume=", 0) == 0) continue;
        command += " " + quoted(args[i]);
    }
    return command + " --resume " + quoted(checkpoint);
}

int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ParsedArgs parsed;
    return program_main(
        "cudacnn-train", [&] { return !(parsed = parse_train_args(args)).help; }, train_usage,
        [&] {
            // A second Ctrl-C while this reports the checkpoint changes nothing.
            const EndProgramOnInterrupt ends_here;
            const TrainSummary summary = run_training(parsed.options, out);
            if (summary.interrupted_by_signal == 0) return 0;
            out.flush();
            // In a data-parallel run rank 0 wrote the checkpoint and says so; the other ranks stop quietly.
            if (summary.last_checkpoint.empty()) return 128 + summary.interrupted_by_signal;
            const dist::LaunchInfo launch = dist::detect_launch();
            const std::string launcher = launch.world_size > 1 && launch.launcher == "mpirun"
                                             ? fmt::format("mpirun -np {} ", launch.world_size)
                                         : launch.world_size > 1 ? std::string("(every process, with its RANK and WORLD_SIZE) ")
                                                                 : std::string();
            err << fmt::format("cudacnn-train: interrupted by {}; the work so far is in {}\nTo go on, run:\n  {}{}\n",
                               interrupt_signal_name(summary.interrupted_by_signal), summary.last_checkpoint,
                               launcher, resume_command(args, summary.last_checkpoint));
            return 128 + summary.interrupted_by_signal;  // the shell's status for a process ended by the signal
        },
        out, err);
}

}  // namespace cudacnn::train
