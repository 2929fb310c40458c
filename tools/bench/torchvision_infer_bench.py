#!/usr/bin/env python3
"""PyTorch's baseline for cudacnn-bench's infer_step rows of torchvision's models (issue 13): the eval-mode
forward pass of vgg16, vgg16_bn, resnet18 and resnet50 (random weights: the speed does not depend on them) at
224 x 224, timed as cudacnn-bench times ours — the input already on the device, CUDA events around each call
after the warm-up, the median of the repeats. Variants: torch_eager (FP32: TF32 off, cudnn.benchmark on, as
cudacnn-bench's cuDNN rows) and torch_tf32 (TF32 on for convolutions and matmuls).

    python3 tools/bench/torchvision_infer_bench.py [--models vgg16,vgg16_bn,resnet18,resnet50]
                                                   [--batch-sizes 1,64] [--warmup 5] [--repeats 20]

Prints one line per model, batch size and variant, in the table's columns:
    infer_step model=NAME,N=B forward VARIANT MEDIAN µs IMAGES images/s
"""
import argparse
import statistics

import torch
import torchvision


def time_forward(model, x, warmup, repeats):
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) * 1000.0)  # ms → µs
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vgg16,vgg16_bn,resnet18,resnet50")
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a GPU (torch.cuda.is_available() is False)")
    torch.backends.cudnn.benchmark = True
    print(f"torchvision_infer_bench: torch {torch.__version__}, torchvision {torchvision.__version__} "
          f"on {torch.cuda.get_device_name()}")
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)(weights=None).eval().cuda()
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            x = torch.randn(batch, 3, 224, 224, device="cuda")
            for variant, tf32 in (("torch_eager", False), ("torch_tf32", True)):
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                us = time_forward(model, x, args.warmup, args.repeats)
                print(f"  infer_step model={name},N={batch} forward {variant} {us:.1f} µs "
                      f"{batch / us * 1e6:.0f} images/s")
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
