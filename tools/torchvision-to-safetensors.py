#!/usr/bin/python3
"""Turns torchvision's pretrained weights (a .pth/.pt file as torchvision downloads them, e.g. vgg16-397923af.pth,
any file torch.save wrote a state_dict of the same architecture to, or such a state_dict in safetensors) into a
safetensors file that `cudacnn-eval --weights FILE` reads. Needs Python 3 with torch and torchvision (Debian: python3-torchvision);
nothing is downloaded. Example:

    tools/torchvision-to-safetensors.py --model vgg16 vgg16-397923af.pth vgg16.safetensors
    cudacnn-eval --weights vgg16.safetensors --predict kitten.jpg

The names and shapes are checked against torchvision's own architecture (torchvision.models.NAME()), so a file of
another model or a damaged one fails here with the keys that differ, not later. Tensors are written in the
architecture's state_dict order with their dtype (float32 as torchvision ships them; --half writes float16,
which cudacnn reads back as float32), and the metadata "model": NAME, which cudacnn-eval reads when --model is
not given.
"""
import argparse
import os
import sys

MODELS = ("vgg16", "vgg16_bn", "resnet18", "resnet50")


def fail(message):
    sys.exit(f"torchvision-to-safetensors: {message}")


def is_safetensors(path):
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{"


def load_state_dict(path):
    """The file's state_dict: a plain one (torchvision's files), one under "state_dict" or "model" (training
    checkpoints), or a pickled whole module; a DataParallel "module." prefix is dropped."""
    import torch
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    if is_safetensors(path):  # a state_dict already in safetensors (e.g. from the safetensors package)
        from safetensors_io import load
        return dict(load(path)[0])
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)  # no code runs while unpickling
    except Exception as error:  # torch < 1.13 (no weights_only), a pickled whole module, or not a torch file
        try:
            content = torch.load(path, map_location="cpu")
        except Exception:
            fail(f"{path}: torch.load cannot read it ({type(error).__name__}: {error}); give a .pth/.pt file "
                 "written by torch.save, e.g. torchvision's download")
        if not isinstance(error, TypeError):
            print(f"torchvision-to-safetensors: {path} holds more than tensors (a pickled module?) and was read "
                  "with torch.load's full unpickler, which runs code: convert only files you trust", file=sys.stderr)
    if isinstance(content, torch.nn.Module):
        content = content.state_dict()
    if isinstance(content, dict):
        for key in ("state_dict", "model"):
            if key in content and isinstance(content[key], dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not content or not all(isinstance(v, torch.Tensor) for v in content.values()):
        fail(f"{path}: holds a {type(content).__name__}, not a state_dict (a dict of tensors)")
    if all(k.startswith("module.") for k in content):
        content = {k[len("module."):]: v for k, v in content.items()}
    return content


def architecture(name):
    import torchvision
    return getattr(torchvision.models, name)(weights=None).state_dict()


def check(state, model, path):
    """Every key of torchvision's `model` present with its shape, and no other key; else an error saying which,
    and which of the other architectures the file fits if one does."""
    expected = architecture(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: the file has {tuple(state[k].shape)}, {model} needs {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or mismatched):
        return expected
    fits = [other for other in MODELS if other != model and set(architecture(other)) == set(state)]
    hint = (f"the file's keys are those of {fits[0]}: use --model {fits[0]}" if fits
            else "is it the weights of this architecture (torchvision's, not a fine-tuned variant)?")

    def listed(title, items):
        shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
        return f"\n  {title}: {shown}" if items else ""

    fail(f"{path} does not hold torchvision's {model} weights; {hint}" + listed("missing keys", missing) +
         listed("unexpected keys", unexpected) + listed("size mismatches", mismatched))


def main():
    parser = argparse.ArgumentParser(
        description="Turns torchvision's pretrained weights (.pth/.pt) into safetensors for cudacnn-eval.")
    parser.add_argument("--model", required=True, choices=MODELS, help="the torchvision architecture")
    parser.add_argument("--half", action="store_true", help="store floats as float16 (half the file size)")
    parser.add_argument("input", help="a .pth/.pt file (e.g. vgg16-397923af.pth from download.pytorch.org) or a "
                        "state_dict in safetensors")
    parser.add_argument("output", help="the safetensors file to write")
    args = parser.parse_args()
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        fail("the output would overwrite the input; give another file name")

    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    from safetensors_io import save  # the safetensors layout without the safetensors package

    state = load_state_dict(args.input)
    expected = check(state, args.model, args.input)
    tensors = {}
    for name in expected:  # torchvision's state_dict order
        t = state[name]
        if t.is_floating_point():
            t = t.to(torch.float16 if args.half else torch.float32)
        elif t.dtype not in (torch.int64, torch.int32):
            fail(f"{args.input}: tensor {name} has dtype {t.dtype}; expected floats or integers")
        tensors[name] = t
    save(args.output, tensors, metadata={"model": args.model, "format": "pt",
                                         "source": os.path.basename(args.input)}, keep_order=True)
    count = sum(t.numel() for t in tensors.values() if t.is_floating_point())
    print(f"{args.output}: {args.model}, {len(tensors)} tensors, {count:,} floats from {args.input}")


if __name__ == "__main__":
    main()
