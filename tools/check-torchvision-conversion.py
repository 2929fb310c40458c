#!/usr/bin/python3
"""A by-hand check of tools/torchvision-to-safetensors.py (CI runs no Python): with Debian's python3-torchvision,

    /usr/bin/python3 tools/check-torchvision-conversion.py [build/cudacnn-eval]

saves a randomly initialized torchvision resnet18 as a .pth (as torchvision's downloads are: a plain state_dict),
as a training checkpoint ({"state_dict": {"module.<name>": ...}}) and as a pickled module; converts each and checks
every tensor, the order and the metadata; checks that a wrong --model, a cut classifier and a non-state_dict are
refused with their messages. Given a cudacnn-eval binary, also predicts tests/fixtures/imagenet_sample.jpg with the
converted weights and compares the top 5 with torchvision's on its weights.transforms(). Prints "ok" at the end.
"""
import os
import subprocess
import sys
import tempfile

import torch
import torchvision
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "torchvision-to-safetensors.py")
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
from safetensors_io import load  # noqa: E402


def convert(*args, expect_error=None):
    run = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    if expect_error is None:
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode != 0 and expect_error in run.stderr, (expect_error, run.stderr)
    return run


def main():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    with torch.no_grad():  # batch-norm statistics away from their defaults
        model.train()(torch.randn(2, 3, 64, 64))
    model.eval()
    state = model.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        torch.save(state, path("plain.pth"))
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}, path("checkpoint.pth"))
        torch.save(model, path("module.pt"))
        for source in ("plain.pth", "checkpoint.pth", "module.pt"):
            convert("--model", "resnet18", path(source), path("out.safetensors"))
            tensors, metadata = load(path("out.safetensors"))
            assert list(tensors) == list(state), source
            assert all(torch.equal(tensors[k], v) for k, v in state.items()), source
            assert metadata["model"] == "resnet18" and metadata["source"] == source, metadata
        convert("--model", "resnet18", "--half", path("plain.pth"), path("half.safetensors"))
        half, _ = load(path("half.safetensors"))
        assert half["fc.weight"].dtype == torch.float16 and torch.equal(half["fc.weight"], state["fc.weight"].half())
        convert("--model", "resnet50", path("plain.pth"), path("x.safetensors"),
                expect_error="the file's keys are those of resnet18: use --model resnet18")
        cut = dict(state, **{"fc.weight": state["fc.weight"][:10], "fc.bias": state["fc.bias"][:10]})
        torch.save(cut, path("cut.pth"))
        convert("--model", "resnet18", path("cut.pth"), path("x.safetensors"),
                expect_error="fc.weight: the file has (10, 512), resnet18 needs (1000, 512)")
        torch.save([1, 2, 3], path("list.pt"))
        convert("--model", "resnet18", path("list.pt"), path("x.safetensors"), expect_error="holds a list, not a state_dict")
        if len(sys.argv) > 1:
            image = os.path.join(ROOT, "tests", "fixtures", "imagenet_sample.jpg")
            weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
            with torch.no_grad():
                p = model(weights.transforms()(Image.open(image).convert("RGB"))[None]).softmax(1)[0]
            names = weights.meta["categories"]
            top = p.topk(5)
            expected = " | ".join(f"{k + 1}. {names[c]} {100 * q:.2f}%"
                                  for k, (q, c) in enumerate(zip(top.values.tolist(), top.indices.tolist())))
            convert("--model", "resnet18", path("plain.pth"), path("out.safetensors"))
            output = subprocess.run([sys.argv[1], "--weights", path("out.safetensors"), "--predict", image,
                                     "--device", "cpu"], capture_output=True, text=True, check=True).stdout
            print(output, end="")
            assert expected in output, f"torchvision: {expected}"
    print("ok")


if __name__ == "__main__":
    main()
