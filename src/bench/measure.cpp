// Checking, warming up and timing one candidate; the context's selection; random inputs.
#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "cudacnn/bench/timing.hpp"

namespace cudacnn::bench {

bool Context::selected(const Record& r) const {
    if (!filter) return true;
    return std::regex_search(fmt::format("{} {} {} {}", r.op, r.direction, r.algorithm, r.shape), *filter);
}

int64_t Context::slots_for(int64_t bytes_per_copy) const {
    return rotation_count(bytes_per_copy, l2_bytes, max_rotation_bytes);
}

Record base_record(const OpCase& c, const std::string& direction, const std::string& algorithm,
                   const std::string& device) {
    Record r;
    r.op = c.op;
    r.shape = shape_text(c);
    r.direction = direction;
    r.algorithm = algorithm;
    r.device = device;
    return r;
}

bool gpu_candidate_possible(const Context& context, Candidate& candidate) {
    if (context.gpu) return true;
    candidate.skipped = context.no_gpu_reason;
    return false;
}

namespace {

double now_us() {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}


void add_rates(Record& r, const Roofline& roofline) {
    const double seconds = *r.median_us * 1e-6;
    if (seconds <= 0) return;
    if (r.flops) {
        r.gflops = *r.flops / seconds * 1e-9;
        if (roofline.sgemm_gflops > 0) r.peak_percent = *r.gflops / roofline.sgemm_gflops * 100.0;
    } else if (r.bytes) {
        r.gbps = *r.bytes / seconds * 1e-9;
        if (roofline.copy_gbps > 0) r.peak_percent = *r.gbps / roofline.copy_gbps * 100.0;
    }
}

}  // namespace

// The CPU reference and the emulator are about a thousand times slower than a GPU: fewer calls suffice to
// see their speed, and more would take minutes per op.
constexpr int64_t kSlowWarmup = 1, kSlowRepeats = 3;

int64_t warmup_calls(const Context& context, const std::string& device) {
    return device != "gpu" ? std::min(context.options.warmup, kSlowWarmup) : context.options.warmup;
}

int64_t timed_calls(const Context& context, const std::string& device) {
    return device != "gpu" ? std::min(context.options.repeats, kSlowRepeats) : context.options.repeats;
}

void set_timing(Record& r, const TimingSummary& t) {
    r.repeats = t.count;
    r.median_us = t.median;
    r.min_us = t.min;
    r.max_us = t.max;
    r.spread_percent = t.spread_percent();
}

Record measure(Candidate& c, const Context& context) {
    Record r = c.record;
    if (!c.skipped.empty()) {
        r.status = Status::skipped;
        r.note = c.skipped;
        return r;
    }
    if (!c.unsupported.empty()) {
        r.status = Status::unsupported;
        r.note = c.unsupported;
        return r;
    }
    try {
        if (c.check) {
            const Check worst = worst_check(c.check());
            r.max_error = worst.error;
            r.tolerance = worst.tolerance;
            if (!worst.passed()) {
                r.status = Status::wrong;
                r.note = fmt::format("{} differs from the CPU reference: max relative error {:.3g} > {:.3g}; not timed",
                                     worst.output, worst.error, worst.tolerance);
                return r;
            }
        } else if (r.note.empty()) {
            r.note = "the reference itself";
        }
        if (c.describe) {
            const std::string description = c.describe();
            if (!description.empty()) r.note = r.note.empty() ? description : r.note + "; " + description;
        }
        const int64_t warmup = warmup_calls(context, r.device), repeats = timed_calls(context, r.device);
        for (int64_t i = 0; i < warmup; ++i) c.run(i);
        if (c.device_timed) context.stream->synchronize();

        std::vector<double> samples;
        // Events only for device work: creating one needs a GPU, and host work is timed without one.
        std::optional<Event> start, end;
        if (c.device_timed) start.emplace(), end.emplace();
        for (int64_t i = 0; i < repeats; ++i) {
            if (c.device_timed) {
                start->record(*context.stream);
                c.run(warmup + i);
                end->record(*context.stream);
                end->synchronize();
                samples.push_back(1e3 * Event::elapsed_ms(*start, *end));
            } else {
                const double t0 = now_us();
                c.run(warmup + i);
                samples.push_back(now_us() - t0);
            }
        }
        const TimingSummary t = summarize(samples);
        set_timing(r, t);
        add_rates(r, context.roofline(r.device));
        if (c.images_per_call > 0 && t.median > 0) r.images_per_s = c.images_per_call / (t.median * 1e-6);
    } catch (const std::exception& e) {
        r.status = Status::failed;
        r.note = e.what();
        r.median_us.reset();
    }
    return r;
}

void add_vendor_ratios(std::vector<Record>& records) {
    for (Record& r : records) {
        if (r.status != Status::ok || !r.median_us) continue;
        const std::string vendor = r.op == "conv2d" ? "cudnn" : r.op == "linear" ? "cublas" : "";
        if (vendor.empty()) continue;
        for (const Record& v : records) {
            if (v.algorithm == vendor && v.op == r.op && v.shape == r.shape && v.direction == r.direction &&
                v.status == Status::ok && v.median_us && *v.median_us > 0)
                r.ratio_to_vendor = *r.median_us / *v.median_us;
        }
    }
}

std::vector<float> random_values(int64_t count, uint64_t seed, uint64_t stream) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + stream);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = dist(rng);
    return values;
}

HostTensor<float> random_tensor(const Shape& shape, uint64_t seed, uint64_t stream) {
    return HostTensor<float>(shape, random_values(shape.numel(), seed, stream));
}

std::vector<double> as_doubles(const std::vector<float>& values) { return {values.begin(), values.end()}; }

void poison(float* device, int64_t count, const Context& context) {
    fill_bytes(device, 0xff, static_cast<size_t>(count) * sizeof(float), context.s());
}

void poison(const DeviceBuffer& buffer, const Context& context) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes(), context.s());
}

std::vector<float> read_back(const float* device, int64_t count, const Context& context) {
    return download(device, static_cast<size_t>(count), context.s());
}

}  // namespace cudacnn::bench

namespace cudacnn::bench {

void RotatedInputs::upload_all(const Context& context, uint64_t seed) {
    if (on_device()) return;
    int64_t bytes = 0;
    for (const auto& values : host_) bytes += static_cast<int64_t>(values.size() * sizeof(float));
    slots_ = context.slots_for(bytes);
    for (int64_t s = 0; s < slots_; ++s) {
        std::vector<DeviceBuffer> copy;
        for (size_t i = 0; i < host_.size(); ++i) {
            copy.push_back(s == 0 ? upload(host_[i], context.s())
                                  : upload(random_values(static_cast<int64_t>(host_[i].size()), seed + s, 100 + i),
                                           context.s()));
        }
        device_.push_back(std::move(copy));
    }
}

Candidate cpu_candidate(const OpCase& c, const std::string& direction, std::function<void()> fn) {
    Candidate cand;
    cand.record = base_record(c, direction, "cpu", "cpu");
    cand.run = [fn = std::move(fn)](int64_t) { fn(); };
    return cand;
}

Check compare_output(const char* output, const float* device, const std::vector<double>& expected,
                     double tolerance, const Context& context) {
    return {output, max_relative_error(read_back(device, static_cast<int64_t>(expected.size()), context), expected),
            tolerance};
}

}  // namespace cudacnn::bench

namespace cudacnn::bench {

Candidate gpu_candidate(const OpCase& c, const std::string& direction, const std::string& algorithm,
                        const Context& context, std::function<std::vector<Check>()> check,
                        std::function<void(int64_t call)> run) {
    Candidate cand;
    cand.record = base_record(c, direction, algorithm, context.gpu ? context.gpu_device : "gpu");
    if (!gpu_candidate_possible(context, cand)) return cand;
    cand.device_timed = true;
    cand.check = std::move(check);
    cand.run = std::move(run);
    return cand;
}

}  // namespace cudacnn::bench
