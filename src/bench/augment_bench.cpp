// Candidates of the augment cases: one augmentation op (or the trainer's default transform) over N random
// 32×32 RGB images, on the device kernels (gpu::augment_batch; the fused gpu::assemble_batch for the default)
// and on the CPU reference (data::augment_batch; the fused data::assemble_batch for the default).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "cuda/augment.hpp"
#include "cuda/batch_assembly.hpp"
#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

// tests/ops/augment_parity_test.cpp's tolerance, on its metric (max |out − ref|, not relative): the kernels
// run the reference's rules in the same float operations; only a reduction order (contrast's mean) and a real
// GPU's transcendental functions may move values, far less than the 1/255 of a misread pixel.
constexpr double kAugmentTolerance = 1e-5;

const data::ImageShape kInput{3, 32, 32};

// One case's inputs and outputs: the images and the reference's batch on the host, and on the device a
// dataset of `copies` batches (copy 0 the check images) so that the timed calls do not all read the L2.
struct AugmentState {
    data::AugmentSpec spec;
    int64_t n = 0, out_values = 0;
    uint64_t seed = 0;
    std::vector<uint8_t> images;  // n records of kInput
    std::vector<int64_t> labels;
    std::vector<int64_t> indices;  // 0 .. n-1
    std::vector<float> ref_x;      // the reference's batch at position 0 of epoch 0
    std::vector<int64_t> ref_labels;

    int64_t copies = 1;
    bool on_device = false;
    DeviceBuffer images_d, labels_d, indices_d, scratch, x, labels_out;

    int64_t in_values() const { return kInput.channels * kInput.height * kInput.width; }
    // The first image of each timed call: a new position every call, as successive batches of an epoch.
    int64_t position(int64_t call) const { return (call * n) % (int64_t{1} << 30); }

    void reference() {
        if (!ref_x.empty()) return;
        ref_x.resize(static_cast<size_t>(n * out_values));
        ref_labels.resize(static_cast<size_t>(n));
        data::augment_batch(images.data(), labels.data(), kInput, indices.data(), n, spec, seed, 0, 0,
                            ref_x.data(), ref_labels.data());
    }

    void upload_all(const Context& ctx) {
        if (on_device) return;
        copies = ctx.slots_for(n * (in_values() + out_values * static_cast<int64_t>(sizeof(float))));
        std::vector<uint8_t> all = images;
        std::vector<int64_t> all_labels, order;
        std::mt19937_64 rng(seed + 29);
        while (static_cast<int64_t>(all.size()) < copies * n * in_values())
            all.push_back(static_cast<uint8_t>(rng()));
        for (int64_t i = 0; i < copies * n; ++i) {
            all_labels.push_back(i % 10);
            order.push_back(i);
        }
        images_d = upload(all, ctx.s());
        labels_d = upload(all_labels, ctx.s());
        indices_d = upload(order, ctx.s());
        scratch = DeviceBuffer(
            static_cast<size_t>(std::max<int64_t>(1, gpu::augment_scratch_floats(spec, kInput, n))) *
            sizeof(float));
        x = DeviceBuffer(static_cast<size_t>(n * out_values) * sizeof(float));
        labels_out = DeviceBuffer(static_cast<size_t>(n) * sizeof(int64_t));
        on_device = true;
    }

    gpu::DeviceImages dataset() const {
        return {images_d.data_as<const uint8_t>(),
                labels_d.data_as<const int64_t>(),
                copies * n,
                kInput.channels,
                kInput.height,
                kInput.width};
    }
    const int64_t* batch_indices(int64_t call) const {
        return indices_d.data_as<const int64_t>() + (call % copies) * n;
    }
};

double max_abs_difference(const std::vector<float>& actual, const std::vector<float>& expected) {
    if (actual.size() != expected.size()) return INFINITY;
    double worst = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
        const double d = std::fabs(static_cast<double>(actual[i]) - static_cast<double>(expected[i]));
        if (std::isnan(d)) return INFINITY;  // NaN: an unwritten (poisoned) value
        worst = std::max(worst, d);
    }
    return worst;
}

std::vector<Check> compare_batch(const AugmentState& st, const std::vector<float>& x,
                                 const std::vector<int64_t>& labels) {
    return {{"x", max_abs_difference(x, st.ref_x), kAugmentTolerance},
            {"labels", labels == st.ref_labels ? 0.0 : INFINITY, 0.0}};
}

// The device candidates' check: poisoned outputs, call 0 (copy 0, position 0), read back, compare.
std::function<std::vector<Check>()> device_check(const std::shared_ptr<AugmentState>& st, const Context* ctx,
                                                 std::function<void(int64_t)> run) {
    return [st, ctx, run] {
        st->reference();
        st->upload_all(*ctx);
        poison(st->x, *ctx);
        fill_bytes(st->labels_out.data(), 0xff, st->labels_out.bytes(), ctx->s());
        run(0);
        return compare_batch(
            *st, read_back(st->x.data_as<float>(), st->n * st->out_values, *ctx),
            download(st->labels_out.data_as<const int64_t>(), static_cast<size_t>(st->n), ctx->s()));
    };
}

}  // namespace

std::vector<Candidate> augment_candidates(const OpCase& c, Context& context) {
    auto st = std::make_shared<AugmentState>();
    st->spec = augment_spec_of(c);
    st->n = c.number("N");
    const data::ImageShape out = data::augment_shapes(st->spec, kInput).back();
    st->out_values = out.channels * out.height * out.width;
    st->seed = context.options.seed;
    std::mt19937_64 rng(context.options.seed + 23);
    st->images.resize(static_cast<size_t>(st->n * st->in_values()));
    for (uint8_t& byte : st->images) byte = static_cast<uint8_t>(rng());
    for (int64_t i = 0; i < st->n; ++i) {
        st->labels.push_back(i % 10);
        st->indices.push_back(i);
    }
    data::FusedCropFlip fused;
    const bool fusable = data::fused_crop_flip(st->spec, kInput, &fused);
    const data::Augmentation augmentation{fused.crop_padding, fused.horizontal_flip};
    const data::Normalization normalization{fused.mean, fused.stddev};

    // The least traffic any implementation has: the uint8 images in, the float batch out.
    const double bytes =
        static_cast<double>(st->n) * static_cast<double>(st->in_values() + st->out_values * 4);
    const auto finish = [&](Candidate& cand, const char* note) {
        cand.record.bytes = bytes;
        cand.record.note = note;
        cand.images_per_call = static_cast<double>(st->n);
    };
    const Context* ctx = &context;
    std::vector<Candidate> candidates;
    if (context.wants("kernel")) {
        auto run = [st, ctx](int64_t call) {
            gpu::augment_batch(st->dataset(), st->batch_indices(call), st->n, st->spec, st->seed, 0,
                               st->position(call), st->scratch.data_as<float>(), st->x.data_as<float>(),
                               st->labels_out.data_as<int64_t>(), ctx->s());
        };
        candidates.push_back(gpu_candidate(c, "forward", "kernel", context, device_check(st, ctx, run), run));
        finish(candidates.back(), "gpu::augment_batch: the uint8 gather kernel, then one kernel per op");
        if (fusable) {
            auto fused_run = [st, ctx, augmentation, normalization](int64_t call) {
                gpu::assemble_batch(st->dataset(), st->batch_indices(call), st->n, &augmentation,
                                    normalization, st->seed, 0, st->position(call), st->x.data_as<float>(),
                                    st->labels_out.data_as<int64_t>(), ctx->s());
            };
            candidates.push_back(
                gpu_candidate(c, "forward", "fused", context, device_check(st, ctx, fused_run), fused_run));
            finish(candidates.back(),
                   "gpu::assemble_batch: crop, flip and normalize in one kernel, as cudacnn-train");
        }
    }
    if (context.wants("cpu")) {
        auto x = std::make_shared<std::vector<float>>(static_cast<size_t>(st->n * st->out_values));
        auto labels = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(st->n));
        candidates.push_back(cpu_candidate(c, "forward", {}));
        candidates.back().run = [st, x, labels](int64_t call) {
            data::augment_batch(st->images.data(), st->labels.data(), kInput, st->indices.data(), st->n,
                                st->spec, st->seed, 0, st->position(call), x->data(), labels->data());
        };
        finish(candidates.back(), "data::augment_batch, the reference: per image, one op after another");
        if (fusable) {
            auto dataset = std::make_shared<data::Dataset>();
            dataset->name = "bench random";
            dataset->class_names = data::known_class_names("cifar10");
            dataset->images = st->images;
            dataset->labels = st->labels;
            const auto fused_run = [st, dataset, x, labels, augmentation, normalization](int64_t call) {
                data::assemble_batch(*dataset, st->indices.data(), st->n, &augmentation, normalization,
                                     st->seed, 0, st->position(call), x->data(), labels->data());
            };
            Candidate cand = cpu_candidate(c, "forward", {});
            cand.record.algorithm = "cpu_fused";
            cand.run = fused_run;
            cand.check = [st, x, labels, fused_run] {
                st->reference();
                fused_run(0);
                return compare_batch(*st, *x, *labels);
            };
            candidates.push_back(std::move(cand));
            finish(candidates.back(),
                   "data::assemble_batch: crop, flip and normalize in one pass, as cudacnn-train");
        }
    }
    return candidates;
}

}  // namespace cudacnn::bench
