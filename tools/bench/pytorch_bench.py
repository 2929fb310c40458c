#!/usr/bin/env python3
"""PyTorch's side of cudacnn-bench: the CifarCNN training step, its per-layer convolutions and the augmentation
ops (torchvision), timed the way cudacnn-bench times ours, written in cudacnn-bench's JSON schema
("cudacnn-bench/1", README "cudacnn-bench") so that tools/bench/report.py can put both side by side.

Variants (the algorithm column): torch_eager (fp32, cuDNN benchmark mode, TF32 off), torch_channels_last
(the same with NHWC tensors), torch_tf32 (TF32 on for convolutions and matmuls), torch_bf16 (automatic mixed
precision, torch.autocast with bfloat16, on NHWC tensors: PyTorch's usual fast recipe, the baseline for a BF16 path
of ours, docs/bf16-nhwc-plan.md), torch_compile (torch.compile of the same function; PyTorch 2.x on a GPU only). Data lives on the device before timing.
GPU timings: CUDA events around each call after the warm-up, inputs rotated over enough copies to cover
twice the L2 cache; CPU: time.perf_counter. On the CPU (PyTorch 1.13 too) it is the baseline of cudacnn's fast
CPU path (tools/bench/cpu-vs-pytorch.sh: --device cpu --threads N --variants eager --no-layers --no-augment).
Each variant also times the evaluation forward pass (infer_step: model.eval(), no autograd).
Augmentation (torchvision v1 transforms on device tensors, per image and on the whole batch) is timed once,
not per variant: torch_tv_loop, torch_tv_batch.

    python3 tools/bench/pytorch_bench.py [--batch-size 128] [--warmup 5] [--repeats 20] [--steps 10]
                                         [--variants eager,channels_last,tf32,bf16,compile] [--device auto|cpu|cuda]
                                         [--augment-batches 1,32,128] [--no-augment] [--no-layers]
                                         [--threads N] [--quick] --json FILE
"""
import argparse
import contextlib
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SCHEMA = "cudacnn-bench/1"
FIELDS = ["op", "shape", "direction", "algorithm", "device", "status", "note", "repeats", "median_us", "min_us",
          "max_us", "spread_percent", "flops", "bytes", "gflops", "gbps", "peak_percent", "ratio_to_vendor",
          "max_error", "tolerance", "images_per_s", "epoch_s"]
CIFAR10_TRAIN_IMAGES = 50000


class CifarCNN(nn.Module):
    """The tutorial's network (DESIGN.md), with the state_dict names cudacnn uses."""

    def __init__(self):
        super().__init__()
        self.conv_layer = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2), nn.Dropout2d(p=0.05),
            nn.Conv2d(128, 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.fc_layer = nn.Sequential(
            nn.Dropout(p=0.1), nn.Linear(4096, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512),
            nn.ReLU(inplace=True), nn.Dropout(p=0.1), nn.Linear(512, 10))

    def forward(self, x):
        # The tutorial's x.view(x.size(0), -1), written so that channels_last tensors work too.
        return self.fc_layer(torch.flatten(self.conv_layer(x), 1))


# (C, H, W, OC) of the six 3×3, padding-1 convolutions, as cudacnn-bench names them.
CONV_LAYERS = [(3, 32, 32, 32), (32, 32, 32, 64), (64, 16, 16, 128), (128, 16, 16, 128), (128, 8, 8, 256),
               (256, 8, 8, 256)]


def record(op, shape, direction, algorithm, device, **values):
    r = {name: None for name in FIELDS}
    r.update(op=op, shape=shape, direction=direction, algorithm=algorithm, device=device, status="ok", note="",
             repeats=0)
    r.update(values)
    return r


def summarize(samples_us):
    s = sorted(samples_us)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    median = statistics.median(s)
    return dict(repeats=len(s), median_us=median, min_us=s[0], max_us=s[-1],
                spread_percent=(q[2] - q[0]) / median * 100.0 if median > 0 else 0.0)


class Timer:
    def __init__(self, device, warmup, repeats):
        self.cuda = device.type == "cuda"
        self.warmup, self.repeats = warmup, repeats

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn):
        """fn(i) once per call; per-call microseconds, median and spread."""
        for i in range(self.warmup):
            fn(i)
        self.sync()
        samples = []
        for i in range(self.repeats):
            if self.cuda:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(self.warmup + i)
                stop.record()
                stop.synchronize()
                samples.append(start.elapsed_time(stop) * 1e3)
            else:
                t0 = time.perf_counter()
                fn(self.warmup + i)
                samples.append((time.perf_counter() - t0) * 1e6)
        return summarize(samples)


def set_tf32(on):
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def rotation_count(bytes_per_copy, device):
    """As cudacnn-bench: copies covering twice the L2 (at least 2, at most 16); 1 on the CPU."""
    if device.type != "cuda":
        return 1
    props = torch.cuda.get_device_properties(device)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    return max(2, min(16, math.ceil(2 * l2 / bytes_per_copy)))


def conv_shape(n, c, h, w, oc):
    return f"N={n},C={c},H={h},W={w},OC={oc},K=3,P=1"


def channels_last_variant(variant):
    return variant in ("channels_last", "bf16")


def autocast(variant, device):
    """torch_bf16's automatic mixed precision (weights stay FP32; convolutions and matmuls run in BF16)."""
    if variant != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def bench_convs(args, device, variant, timer, out):
    compile_fn = variant == "compile"
    channels_last = channels_last_variant(variant)
    dtype = torch.bfloat16 if variant == "bf16" else torch.float32
    for c, h, w, oc in CONV_LAYERS:
        n = args.batch_size
        shape = conv_shape(n, c, h, w, oc)
        flops = 2.0 * n * oc * h * w * c * 9
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        per_copy = torch.finfo(dtype).bits // 8 * (n * c * h * w + oc * c * 9 + n * oc * h * w)
        copies = rotation_count(per_copy, device)
        xs = [(torch.rand(n, c, h, w, device=device) * 2 - 1).to(dtype, memory_format=fmt) for _ in range(copies)]
        ws = [(torch.rand(oc, c, 3, 3, device=device) * 2 - 1).to(dtype, memory_format=fmt) for _ in range(copies)]
        dys = [(torch.rand(n, oc, h, w, device=device) * 2 - 1).to(dtype, memory_format=fmt) for _ in range(copies)]
        b = torch.rand(oc, device=device, dtype=dtype)

        def forward(x, wt):
            return F.conv2d(x, wt, b, padding=1)

        # aten's convolution_backward is the call autograd makes (cuDNN's backward-data / -filter on a GPU).
        def backward_data(dy, x, wt):
            return torch.ops.aten.convolution_backward(dy, x, wt, [oc], [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                       [True, False, False])[0]

        def backward_filter(dy, x, wt):
            return torch.ops.aten.convolution_backward(dy, x, wt, [oc], [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                       [False, True, True])[1]

        passes = {"forward": (forward, lambda i: (xs[i % copies], ws[i % copies])),
                  "backward_data": (backward_data, lambda i: (dys[i % copies], xs[i % copies], ws[i % copies])),
                  "backward_filter": (backward_filter, lambda i: (dys[i % copies], xs[i % copies], ws[i % copies]))}
        for direction, (fn, inputs) in passes.items():
            if compile_fn:
                fn = torch.compile(fn)
            with torch.no_grad():
                stats = timer.time(lambda i: fn(*inputs(i)))
            r = record("conv2d", shape, direction, "torch_" + variant, device_name(device), flops=flops, **stats)
            r["gflops"] = flops / (r["median_us"] * 1e3)
            out.append(r)


def bench_step(args, device, variant, timer, out):
    n = args.batch_size
    model = CifarCNN().to(device)
    x = torch.rand(n, 3, 32, 32, device=device) * 2 - 1
    y = torch.arange(n, device=device) % 10
    if channels_last_variant(variant):
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(variant, device):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    step = torch.compile(one_step) if variant == "compile" else one_step

    def steps(_):
        for _ in range(args.steps):
            loss = step()
        loss.item()  # waits for the device, as a training loop's read-back does

    stats = timer.time(steps)
    for key in ("median_us", "min_us", "max_us"):
        stats[key] /= args.steps
    shape = f"model=cifar_cnn,N={n}"
    algorithm = "torch_" + variant
    r = record("train_step", shape, "step", algorithm, device_name(device), note=f"steps per sample: {args.steps}",
               images_per_s=n / (stats["median_us"] * 1e-6), **stats)
    out.append(r)
    batches = -(-CIFAR10_TRAIN_IMAGES // n)
    out.append(record("epoch", shape, "estimate", algorithm, device_name(device),
                      epoch_s=batches * stats["median_us"] * 1e-6,
                      note=f"{batches} steps of {n} images (CIFAR-10's 50,000), training only"))
    bench_inference(model, x, args, device, variant, timer, out)


def bench_inference(model, x, args, device, variant, timer, out):
    """The evaluation forward pass (model.eval(), no autograd) on the same batch: cudacnn-bench's infer_step."""
    model.eval()
    n = x.shape[0]
    algorithm = "torch_" + variant

    def forwards(_):
        with torch.no_grad(), autocast(variant, device):
            for _ in range(args.steps):
                logits = model(x)
            logits.sum().item()

    stats = timer.time(forwards)
    for key in ("median_us", "min_us", "max_us"):
        stats[key] /= args.steps
    out.append(record("infer_step", f"model=cifar_cnn,N={n}", "forward", algorithm, device_name(device),
                      note=f"forward passes per sample: {args.steps}", images_per_s=n / (stats["median_us"] * 1e-6),
                      **stats))
    model.train()


# The augmentation ops of cudacnn-bench's augment cases (src/bench/cases.cpp, augment_bench_ops), with the same
# arguments, as torchvision v1 transforms (their defaults where ours are torchvision's: RandomResizedCrop without
# antialias, as torchvision 0.14 on tensors). torchvision has no Gaussian or salt-and-pepper noise before
# transforms.v2.GaussianNoise (0.20), so those two are written in torch. Kornia is not timed here (not installed,
# and the GPU machine has no network); Kornia's own comparison of augmentation libraries (see Shi, Riba et al.,
# "Differentiable Data Augmentation with Kornia", arXiv 2011.09832) is where batch sizes 1, 32 and 128 come from.
# Its figures are not copied here: they were not at hand to check.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def augment_transforms():
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    bilinear = InterpolationMode.BILINEAR

    def noise(x):  # noise:0.1, GaussianNoise(mean=0, sigma=0.1, clip=True)
        return (x + 0.1 * torch.randn_like(x)).clamp_(0, 1)

    def salt_pepper(x):  # saltpepper:0.05, skimage's s&p with salt_vs_pepper 0.5
        r = torch.rand_like(x)
        return torch.where(r < 0.025, torch.ones_like(x), torch.where(r < 0.05, torch.zeros_like(x), x))

    kwargs = {"antialias": False} if "antialias" in T.RandomResizedCrop.__init__.__code__.co_varnames else {}
    return {
        "default": T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                              T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
        "crop": T.RandomCrop(32, padding=4),
        "hflip": T.RandomHorizontalFlip(0.5),
        "vflip": T.RandomVerticalFlip(0.5),
        "jitter": T.ColorJitter(0.4, 0.4, 0.4, 0.1),
        "grayscale": T.RandomGrayscale(0.1),
        "erasing": T.RandomErasing(0.5),
        "noise": noise,
        "saltpepper": salt_pepper,
        "normalize": T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        "affine": T.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5, interpolation=bilinear),
        "rotation": T.RandomRotation(30, interpolation=bilinear),
        "centercrop": T.CenterCrop(28),
        "resizedcrop": T.RandomResizedCrop(32, **kwargs),
        "perspective": T.RandomPerspective(0.5, p=1.0),
    }


def augment_shape(name, n):
    return f"N={n}" if name == "default" else f"OP={name},N={n}"


def bench_augment(args, device, timer, out):
    """Each op on uint8 batches on the device turned into floats (ToTensor) and transformed: torch_tv_loop
    calls the transform per image (its own random draws, as a DataLoader would) and stacks the results;
    torch_tv_batch calls it once on the batch, which torchvision v1 allows but with one draw for all images."""
    try:
        transforms = augment_transforms()
    except ImportError as e:
        for algorithm in ("torch_tv_loop", "torch_tv_batch"):
            out.append(record("augment", "", "forward", algorithm, device_name(device), status="skipped",
                              note=f"torchvision is not installed ({e})"))
        return
    for name, transform in transforms.items():
        for n in args.augment_batches:
            copies = rotation_count(n * 3 * 32 * 32 * 5, device)  # uint8 in, float out
            images = [torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device) for _ in range(copies)]
            variants = {
                "torch_tv_loop": lambda i: torch.stack([transform(x) for x in images[i % copies].float().div_(255)]),
                "torch_tv_batch": lambda i: transform(images[i % copies].float().div_(255)),
            }
            for algorithm, fn in variants.items():
                with torch.no_grad():
                    stats = timer.time(fn)
                note = ("per image, stacked" if algorithm == "torch_tv_loop" else
                        "one call on the batch: one random draw for all its images")
                out.append(record("augment", augment_shape(name, n), "forward", algorithm, device_name(device),
                                  note=note, images_per_s=n / (stats["median_us"] * 1e-6), **stats))


def device_name(device):
    return "gpu" if device.type == "cuda" else "cpu"


def skipped(variant, device, batch_size, why):
    return [record("train_step", f"model=cifar_cnn,N={batch_size}", "step", "torch_" + variant, device_name(device),
                   status="skipped", note=why)]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", "-b", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--variants", default="eager,channels_last,tf32,bf16,compile")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--quick", action="store_true", help="warmup 1, repeats 2, steps 1, batch 8 (unless given)")
    parser.add_argument("--augment-batches", default="1,32,128",
                        help="batch sizes of the augmentation ops (comma-separated; default 1,32,128)")
    parser.add_argument("--no-augment", action="store_true", help="skip the augmentation ops")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer convolutions")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads on the CPU (default: PyTorch's own choice)")
    parser.add_argument("--json", required=True, help="where to write the records")
    args = parser.parse_args(argv)
    quick = dict(batch_size=8, warmup=1, repeats=2, steps=1)
    full = dict(batch_size=128, warmup=5, repeats=20, steps=10)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--batch-size, --repeats and --steps must be at least 1, --warmup at least 0")
    try:
        args.augment_batches = [int(n) for n in args.augment_batches.split(",")]
    except ValueError:
        parser.error(f"--augment-batches {args.augment_batches}: use whole numbers joined by commas, e.g. 1,32,128")
    if min(args.augment_batches) < 1:
        parser.error("--augment-batches: each batch size must be at least 1")
    variants = args.variants.split(",")
    unknown = set(variants) - {"eager", "channels_last", "tf32", "bf16", "compile"}
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; use eager, channels_last, tf32, bf16, compile")

    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        parser.error("--device cuda: torch.cuda.is_available() is False")
    device = torch.device("cuda" if cuda and args.device != "cpu" else "cpu")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # cuDNN's fastest algorithm per shape, as cudacnn-bench's cuDNN rows
    timer = Timer(device, args.warmup, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"pytorch_bench: torch {torch.__version__} on {name}{threads}, batch {args.batch_size}", flush=True)

    records = []
    for variant in variants:
        why = None
        if variant == "compile" and not hasattr(torch, "compile"):
            why = f"torch.compile needs PyTorch 2 (this is {torch.__version__})"
        elif variant == "compile" and device.type != "cuda":
            why = "torch.compile is timed on the GPU only"
        elif variant == "tf32" and device.type != "cuda":
            why = "TF32 exists on the GPU only"
        if why:
            records += skipped(variant, device, args.batch_size, why)
            print(f"  {variant}: skipped ({why})", flush=True)
            continue
        set_tf32(variant == "tf32")
        try:
            if not args.no_layers:
                bench_convs(args, device, variant, timer, records)
            bench_step(args, device, variant, timer, records)
        except Exception as e:  # one variant failing (e.g. compile without a compiler) must not lose the others
            records.append(record("train_step", f"model=cifar_cnn,N={args.batch_size}", "step", "torch_" + variant,
                                  device_name(device), status="failed", note=f"{type(e).__name__}: {e}"[:300]))
        for r in records:
            if r["algorithm"] == "torch_" + variant and r["status"] != "ok":
                print(f"  {r['op']} {r['algorithm']}: {r['status']}: {r['note']}", flush=True)
            if r["algorithm"] == "torch_" + variant and r["median_us"] is not None:
                rate = f"{r['gflops']:.1f} GFLOP/s" if r["gflops"] else f"{r['images_per_s']:.0f} images/s"
                print(f"  {r['op']:<10} {r['shape']:<36} {r['direction']:<15} {r['algorithm']:<20} "
                      f"{r['median_us']:>10.1f} µs  {rate}", flush=True)
    set_tf32(False)
    if not args.no_augment:
        first = len(records)
        bench_augment(args, device, timer, records)
        for r in records[first:]:
            if r["status"] != "ok":
                print(f"  augment {r['algorithm']}: {r['status']}: {r['note']}", flush=True)
            else:
                print(f"  augment    {r['shape']:<36} {'forward':<15} {r['algorithm']:<20} "
                      f"{r['median_us']:>10.1f} µs  {r['images_per_s']:.0f} images/s", flush=True)
    set_tf32(False)
    report = {"schema": SCHEMA, "tool": "pytorch_bench.py", "device": name, "model": "cifar_cnn",
              "batch_size": args.batch_size, "warmup": args.warmup, "repeats": args.repeats, "records": records,
              "torch": torch.__version__}
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
