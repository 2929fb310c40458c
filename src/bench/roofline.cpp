// The roofline measured at the start, so that percentages refer to this device: device-to-device copy
// bandwidth and an SGEMM rate (cuBLAS in the cuda flavour, our SGEMM on the emulator), or on the CPU memcpy and
// the reference's own matrix product.
#include <cstring>

#include <fmt/format.h>

#include "cuda/gemm.hpp"
#include "cudacnn/ops/linear.hpp"
#include "measure.hpp"
#if CUDACNN_CUDA
#include "cuda/vendor/cublas_gemm.hpp"
#endif

namespace cudacnn::bench {
namespace {

Record roofline_record(const std::string& shape, const std::string& direction, const std::string& algorithm,
                       const std::string& device) {
    Record r;
    r.op = "roofline";
    r.shape = shape;
    r.direction = direction;
    r.algorithm = algorithm;
    r.device = device;
    return r;
}

// Measures a roofline candidate; the note says what it is instead of "the reference itself".
Record measure_roofline(Candidate& cand, const Context& context, const std::string& note) {
    Record r = measure(cand, context);
    if (r.status == Status::ok) r.note = note;
    return r;
}

}  // namespace

std::vector<Record> measure_gpu_roofline(Context& context) {
    std::vector<Record> out;
    const std::string device = context.gpu_device;
    // 256 MiB each way dwarfs any L2; the emulator copies at host speed, so less suffices there.
    const size_t copy_bytes = size_t{kEmulated ? 16 : 256} << 20;
    auto src = std::make_shared<DeviceBuffer>(copy_bytes), dst = std::make_shared<DeviceBuffer>(copy_bytes);
    fill_bytes(src->data(), 0x3f, copy_bytes, context.s());
    const Context* ctx = &context;
    Candidate copy;
    copy.record = roofline_record(fmt::format("bytes={}", copy_bytes), "copy", "device_copy", device);
    copy.record.bytes = 2.0 * static_cast<double>(copy_bytes);  // each byte read and written
    copy.device_timed = true;
    copy.run = [src, dst, ctx, copy_bytes](int64_t) { copy_on_device(dst->data(), src->data(), copy_bytes, ctx->s()); };
    Record copy_record = measure_roofline(copy, context, "device-to-device cudaMemcpyAsync; read + write bytes");
    if (copy_record.gbps) {
        context.gpu_roofline.copy_gbps = *copy_record.gbps;
        copy_record.peak_percent = 100.0;
    }
    out.push_back(copy_record);

    // A square SGEMM large enough to reach the card's rate (about 8 ms at 67 TFLOP/s); small on the emulator.
    const int64_t m = kEmulated ? 192 : 8192;
    auto a = std::make_shared<DeviceBuffer>(upload(random_values(m * m, context.options.seed, 51), context.s()));
    auto b = std::make_shared<DeviceBuffer>(upload(random_values(m * m, context.options.seed, 52), context.s()));
    auto c = std::make_shared<DeviceBuffer>(static_cast<size_t>(m * m) * sizeof(float));
    const std::string shape = fmt::format("M={},N={},K={}", m, m, m);
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(m) * static_cast<double>(m);
    const auto sgemm_candidate = [&](const std::string& algorithm, auto&& gemm) {
        Candidate cand;
        cand.record = roofline_record(shape, "sgemm", algorithm, device);
        cand.record.flops = flops;
        cand.device_timed = true;
        cand.run = [a, b, c, ctx, m, gemm](int64_t) {
            gemm(false, false, m, m, m, 1.0f, a->data_as<float>(), m, b->data_as<float>(), m, 0.0f, c->data_as<float>(),
                 m, ctx->s());
        };
        return cand;
    };
#if CUDACNN_CUDA
    Candidate vendor = sgemm_candidate("cublas", gpu::cublas_sgemm);
    Record vendor_record = measure_roofline(vendor, context, "cuBLAS SGEMM, FP32 (no TF32): the compute peak");
    if (vendor_record.gflops) {
        context.gpu_roofline.sgemm_gflops = *vendor_record.gflops;
        vendor_record.peak_percent = 100.0;
    }
    out.push_back(vendor_record);
    Candidate own = sgemm_candidate("kernel", gpu::sgemm);
    Record own_record = measure_roofline(own, context, "our tiled SGEMM (cuda/gemm.cu), beside cuBLAS");
    if (own_record.gflops && context.gpu_roofline.sgemm_gflops > 0)
        own_record.peak_percent = *own_record.gflops / context.gpu_roofline.sgemm_gflops * 100.0;
    out.push_back(own_record);
#else
    Candidate own = sgemm_candidate("kernel", gpu::sgemm);
    Record own_record = measure_roofline(own, context, "our tiled SGEMM on the emulator (no cuBLAS here): the compute peak");
    if (own_record.gflops) {
        context.gpu_roofline.sgemm_gflops = *own_record.gflops;
        own_record.peak_percent = 100.0;
    }
    out.push_back(own_record);
#endif
    return out;
}

std::vector<Record> measure_cpu_roofline(Context& context) {
    std::vector<Record> out;
    const size_t copy_bytes = size_t{64} << 20;
    auto src = std::make_shared<std::vector<char>>(copy_bytes, 1), dst = std::make_shared<std::vector<char>>(copy_bytes);
    Candidate copy;
    copy.record = roofline_record(fmt::format("bytes={}", copy_bytes), "copy", "memcpy", "cpu");
    copy.record.bytes = 2.0 * static_cast<double>(copy_bytes);
    copy.run = [src, dst, copy_bytes](int64_t) { std::memcpy(dst->data(), src->data(), copy_bytes); };
    Record copy_record = measure_roofline(copy, context, "std::memcpy on one core; read + write bytes");
    if (copy_record.gbps) {
        context.cpu_roofline.copy_gbps = *copy_record.gbps;
        copy_record.peak_percent = 100.0;
    }
    out.push_back(copy_record);

    const int64_t m = 256;
    auto x = std::make_shared<HostTensor<float>>(random_tensor(Shape{m, m}, context.options.seed, 53));
    auto w = std::make_shared<HostTensor<float>>(random_tensor(Shape{m, m}, context.options.seed, 54));
    Candidate gemm;
    gemm.record = roofline_record(fmt::format("M={},N={},K={}", m, m, m), "sgemm", "cpu", "cpu");
    gemm.record.flops = 2.0 * static_cast<double>(m * m * m);
    gemm.run = [x, w](int64_t) { cpu::linear(*x, *w); };
    Record gemm_record = measure_roofline(gemm, context, "the reference's matrix product (cpu::linear): the CPU path's own rate");
    if (gemm_record.gflops) {
        context.cpu_roofline.sgemm_gflops = *gemm_record.gflops;
        gemm_record.peak_percent = 100.0;
    }
    out.push_back(gemm_record);
    return out;
}

}  // namespace cudacnn::bench
