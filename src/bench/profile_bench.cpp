// cudacnn-bench --profile: a step variant's training and inference steps run one launch at a time with each
// graph node's forward and backward, the loss, the all-reduce, the optimizer step and the non-finite checks
// timed on their own (Executor::start_profile), beside the whole step measured as usual.
#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "cudacnn/bench/timing.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/profile.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

using graph::ProfilePart;
using graph::StepProfile;

std::optional<double> median_of(const std::vector<double>& samples) {
    if (samples.empty()) return std::nullopt;
    return summarize(samples).median;
}

double median_or_zero(const std::vector<double>& samples) { return median_of(samples).value_or(0.0); }

// The parts' medians added up: what the step costs without the gaps between its parts.
double sum_of_parts(const StepProfile& p) {
    double sum = 0.0;
    for (const ProfilePart& part : p.parts) sum += median_or_zero(part.forward_us) + median_or_zero(part.backward_us);
    return sum;
}

bool is_node(const StepProfile& p, std::size_t index) { return index < p.nodes; }

std::string output_text(const ProfilePart& part) {
    if (part.output.rank() == 0) return "";
    std::string text;
    for (int64_t d : part.output.dims()) text += (text.empty() ? "" : "x") + std::to_string(d);
    return text;
}

void run_step(graph::Executor& executor, bool training, int64_t& step) {
    if (training) {
        executor.train_step(step++);
    } else {
        executor.eval_step();
    }
}

// Warm-up steps, then `repeats` profiled ones; the metrics they add are dropped.
StepProfile profile_pass(graph::Executor& executor, bool training, int64_t warmup, int64_t repeats, int64_t& step) {
    for (int64_t i = 0; i < warmup; ++i) run_step(executor, training, step);
    executor.start_profile();
    try {
        for (int64_t i = 0; i < repeats; ++i) run_step(executor, training, step);
    } catch (...) {
        executor.stop_profile();
        throw;
    }
    StepProfile profile = executor.stop_profile();
    executor.read_metrics();
    return profile;
}

Record part_record(const Record& base, const std::string& op, const std::string& direction,
                   const std::vector<double>& samples) {
    Record r = base;
    r.op = op;
    r.direction = direction;
    set_timing(r, summarize(samples));
    return r;
}

// A pass's sum record, without its numbers: what --filter selects a pass by.
Record sum_record(const Record& step_record, const std::string& op) {
    Record r = step_record;
    r.op = op;
    r.direction = "sum";
    return r;
}

std::string percent_of(double part, double whole) {
    return whole > 0 ? fmt::format("{:.1f}%", 100.0 * part / whole) : "-";
}

// One pass's records: per part and direction that ran, then the sum of the parts and the profiled step whole.
std::vector<Record> pass_records(const StepProfile& p, const std::string& op, const Record& base,
                                 const std::string& model_and_batch, const std::optional<double>& measured_us) {
    std::vector<Record> out;
    const double sum = sum_of_parts(p);
    for (std::size_t i = 0; i < p.parts.size(); ++i) {
        const ProfilePart& part = p.parts[i];
        Record r = base;
        r.shape = fmt::format("{},node={},kind={}", model_and_batch, part.name, part.kind);
        if (part.output.rank() > 0) r.shape += ",out=" + output_text(part);
        const double total = median_or_zero(part.forward_us) + median_or_zero(part.backward_us);
        r.note = fmt::format("{} of the sum of the parts{}", percent_of(total, sum),
                             part.detail.empty() ? "" : "; " + part.detail);
        const bool node = is_node(p, i);
        if (!part.forward_us.empty()) out.push_back(part_record(r, op, node ? "forward" : "step", part.forward_us));
        if (!part.backward_us.empty()) out.push_back(part_record(r, op, "backward", part.backward_us));
        if (node && part.forward_us.empty()) {  // a fused ReLU, an alias: every node has its record
            r.op = op;
            r.direction = "forward";
            r.status = Status::skipped;
            r.note = part.detail.empty() ? "did not run" : part.detail;
            out.push_back(r);
        }
    }
    Record total = base;
    total.shape = model_and_batch;
    total.op = op;
    total.direction = "sum";
    total.repeats = p.steps;
    total.median_us = sum;
    total.note = measured_us ? fmt::format("the parts' medians added up; the step measured as usual: {:.1f} µs "
                                           "(sum / measured {})",
                                           *measured_us, percent_of(sum, *measured_us))
                             : "the parts' medians added up";
    out.push_back(total);
    if (!p.step_us.empty()) {
        Record whole = part_record(base, op, "profiled_step", p.step_us);
        whole.shape = model_and_batch;
        whole.note = "the profiled step whole, first mark to last: the parts and the gaps between them";
        out.push_back(whole);
    }
    return out;
}

std::string us_text(const std::optional<double>& us) { return us ? fmt::format("{:.1f}", *us) : "-"; }

// The printed table: a row per node (and other part), train forward, backward and share, inference and share.
std::string pass_table(const std::string& title, const StepProfile& train, const StepProfile& infer,
                       const std::optional<double>& measured_train, const std::optional<double>& measured_infer) {
    const StepProfile& names = !train.parts.empty() ? train : infer;
    std::size_t name_width = 16, output_width = 6;
    for (const ProfilePart& part : names.parts) {
        name_width = std::max(name_width, part.name.size());
        output_width = std::max(output_width, output_text(part).size());
    }
    const double train_sum = sum_of_parts(train), infer_sum = sum_of_parts(infer);
    std::string text = title;
    text += fmt::format("{:<{}} {:<20} {:<{}} {:>12} {:>12} {:>7} {:>12} {:>7}  {}\n", "node", name_width, "kind",
                        "output", output_width, "train fwd µs", "train bwd µs", "share", "infer µs", "share",
                        "algorithm / note");
    auto part_of = [](const StepProfile& p, std::size_t i) -> const ProfilePart* {
        return i < p.parts.size() ? &p.parts[i] : nullptr;
    };
    for (std::size_t i = 0; i < names.parts.size(); ++i) {
        const ProfilePart& part = names.parts[i];
        const ProfilePart* t = part_of(train, i);
        const ProfilePart* e = part_of(infer, i);
        const std::optional<double> fwd = t ? median_of(t->forward_us) : std::nullopt;
        const std::optional<double> bwd = t ? median_of(t->backward_us) : std::nullopt;
        const std::optional<double> inf = e ? median_of(e->forward_us) : std::nullopt;
        if (!fwd && !bwd && !inf && !is_node(names, i)) continue;  // e.g. no all-reduce in a single process
        const bool trained = fwd || bwd;
        const std::string kind = is_node(names, i) ? part.kind : "";  // the other parts' kind is their name
        text += fmt::format("{:<{}} {:<20} {:<{}} {:>12} {:>12} {:>7} {:>12} {:>7}  {}\n", part.name, name_width,
                            kind, output_text(part), output_width, us_text(fwd), us_text(bwd),
                            trained ? percent_of(fwd.value_or(0) + bwd.value_or(0), train_sum) : "-", us_text(inf),
                            inf ? percent_of(*inf, infer_sum) : "-", part.detail);
    }
    auto summary = [](const char* pass, const StepProfile& p, double sum, const std::optional<double>& measured) {
        if (p.steps == 0) return std::string();
        return fmt::format("{}: sum of the parts {:.1f} µs; the profiled step whole {} µs (first mark to last: the "
                           "parts and the gaps between them); the step measured as usual {} µs; sum / measured {}\n",
                           pass, sum, us_text(median_of(p.step_us)), us_text(measured),
                           measured ? percent_of(sum, *measured) : "-");
    };
    text += summary("train", train, train_sum, measured_train);
    text += summary("infer", infer, infer_sum, measured_infer);
    return text + "\n";
}

}  // namespace

bool profiles_variant(const Record& step_record, const Context& context) {
    if (context.options.filter.empty()) {
        const std::string& a = step_record.algorithm;
        return a == "cuda_graph" || a == "cuda_graph_tf32" || a == "cpu" || a == "cpu_ref";
    }
    return context.selected(sum_record(step_record, "train_profile")) ||
           context.selected(sum_record(step_record, "infer_profile"));
}

std::vector<Record> profile_step_variant(graph::Executor& executor, const Record& step_record,
                                         const std::optional<Record>& train_measured,
                                         const std::optional<Record>& infer_measured, int64_t& step,
                                         Context& context) {
    const std::string model_and_batch = step_record.shape;  // model=NAME,N=BATCH
    Record base = step_record;
    base.status = Status::ok;
    base.note.clear();
    base.max_error.reset();
    base.tolerance.reset();
    base.images_per_s.reset();
    const bool train_wanted = context.selected(sum_record(base, "train_profile"));
    const bool infer_wanted = context.selected(sum_record(base, "infer_profile"));
    const int64_t warmup = warmup_calls(context, base.device), repeats = timed_calls(context, base.device);
    auto measured = [](const std::optional<Record>& r) -> std::optional<double> {
        if (!r || r->status != Status::ok) return std::nullopt;
        return r->median_us;
    };
    std::vector<Record> out;
    StepProfile train, infer;
    const char* op = "train_profile";
    try {
        if (train_wanted) train = profile_pass(executor, true, warmup, repeats, step);
        op = "infer_profile";
        if (infer_wanted) infer = profile_pass(executor, false, warmup, repeats, step);
    } catch (const std::exception& e) {
        Record failed = base;
        failed.shape = model_and_batch;
        failed.op = op;
        failed.direction = "sum";
        failed.status = Status::failed;
        failed.note = e.what();
        out.push_back(failed);
        return out;
    }
    if (train.steps > 0) {
        for (Record& r : pass_records(train, "train_profile", base, model_and_batch, measured(train_measured)))
            out.push_back(std::move(r));
    }
    if (infer.steps > 0) {
        for (Record& r : pass_records(infer, "infer_profile", base, model_and_batch, measured(infer_measured)))
            out.push_back(std::move(r));
    }
    if (out.empty()) return out;
    const std::string clock = train.steps > 0 ? train.clock : infer.clock;
    const bool gpu = executor.options().backend == graph::Backend::gpu;
    const std::string title = fmt::format(
        "profile of {}, {} ({}):\nmedians of {} steps each, {}, timed by {}; shares of the sum of the parts\n",
        base.algorithm, model_and_batch, executor.describe().front(), repeats,
        gpu ? "one launch at a time (no CUDA graph)" : "one op at a time", clock);
    context.profile_tables += pass_table(title, train, infer, measured(train_measured), measured(infer_measured));
    return out;
}

}  // namespace cudacnn::bench
