#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, tests/fuzz/corpus/<target>/ (committed; run again after changing it).

Small valid inputs of every parser and a few slightly broken ones: libFuzzer mutates them (tools/fuzz.sh).
Standard library only. The JPEG seeds are the test fixtures' CIFAR pictures.
"""
import json
import pathlib
import shutil
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def put(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)


# ---- CIFAR: byte 0 the layout (0 CIFAR-10, 1 CIFAR-100 fine, 2 coarse), byte 1 the names file's length ----
def cifar_record(label_bytes, seed):
    return bytes(label_bytes) + bytes((seed * 7 + i * 13) % 256 for i in range(3072))


def cifar():
    put("cifar", "cifar10_two_records", bytes([0, 0]) + cifar_record([3], 1) + cifar_record([9], 2))
    put("cifar", "cifar100_fine", bytes([1, 0]) + cifar_record([4, 57], 3))
    put("cifar", "cifar100_coarse", bytes([2, 0]) + cifar_record([19, 99], 4))
    names = "\n".join(f"class{i}" for i in range(10)).encode() + b"\n\n"
    put("cifar", "cifar10_names", bytes([0, len(names)]) + names + cifar_record([1], 5))
    put("cifar", "cifar10_truncated", bytes([0, 0]) + cifar_record([2], 6)[:1500])
    put("cifar", "cifar10_bad_label", bytes([0, 0]) + cifar_record([10], 7))
    put("cifar", "cifar10_few_names", bytes([0, 4]) + b"a\nb\n" + cifar_record([0], 8))


# ---- PNG and JPEG images ----
def png(width, height, color_type, bit_depth, rows, palette=None):
    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    if palette is not None:
        out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image():
    rgb = [bytes((x * 60 + y * 10 + c * 90) % 256 for x in range(4) for c in range(3)) for y in range(3)]
    put("image", "rgb_4x3.png", png(4, 3, 2, 8, rgb))
    grey = [bytes((x * 30 + y) % 256 for x in range(5)) for y in range(5)]
    put("image", "grey_5x5.png", png(5, 5, 0, 8, grey))
    rgba16 = [bytes((x * 17 + y * 3 + k) % 256 for x in range(2) for k in range(8)) for y in range(2)]
    put("image", "rgba16_2x2.png", png(2, 2, 6, 16, rgba16))
    put("image", "palette_3x2.png", png(3, 2, 3, 8, [bytes([0, 1, 2]), bytes([2, 1, 0])], bytes(range(9))))
    put("image", "truncated.png", png(4, 3, 2, 8, rgb)[:60])
    put("image", "huge_header.png", png(60000, 60000, 2, 8, rgb))
    jpeg = (ROOT / "tests" / "fixtures" / "cifar10_cat.jpg").read_bytes()
    put("image", "cat.jpg", jpeg)
    put("image", "truncated.jpg", jpeg[: len(jpeg) // 2])
    put("image", "ship.jpg", (ROOT / "tests" / "fixtures" / "cifar10_ship.jpg").read_bytes())


# ---- safetensors and checkpoints ----
def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), stored in that order."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


def tensors():
    put("safetensors", "f32_and_i64", safetensors(
        [("weight", "F32", [2, 2], f32(1, -2, 3.5, 0)), ("count", "I64", [], struct.pack("<q", 7))],
        {"format": "pt"}))
    put("safetensors", "f16_bf16_u8", safetensors(
        [("a", "F16", [3], struct.pack("<3H", 0x3C00, 0x7C00, 0x8001)),
         ("b", "BF16", [1, 2], struct.pack("<2H", 0x3F80, 0x7FC0)), ("c", "U8", [4], bytes([1, 2, 3, 4])),
         ("d", "F64", [1], struct.pack("<d", 2.5)), ("e", "I32", [0], b"")]))
    put("safetensors", "bad_offsets", safetensors([("x", "F32", [2], f32(1, 2))])[:-4])
    put("safetensors", "huge_header_size", struct.pack("<Q", 1 << 62) + b"{}")
    put("safetensors", "huge_shape", safetensors([("x", "F32", [1 << 40, 1 << 40], b"")]))

    options = {"model": "cifar_cnn", "dataset": "synthetic", "epochs": 2, "batch_size": 16, "lr": 0.001,
               "optimizer": "adam", "seed": 3, "lr_schedule": "constant"}
    meta = {"epoch": 1, "step": 4, "options": options, "best_test_accuracy": 0.25}
    layout = {"format": "pt", "cudacnn.checkpoint_layout": "2", "cudacnn.checkpoint": json.dumps(meta)}
    model = [("model.fc.weight", "F32", [2, 3], f32(*range(6))), ("model.fc.bias", "F32", [2], f32(0.5, -0.5)),
             ("model.bn.num_batches_tracked", "I64", [], struct.pack("<q", 4))]
    optimizer = [("optimizer.step", "I64", [], struct.pack("<q", 4)),
                 ("optimizer.exp_avg.fc.weight", "F32", [2, 3], f32(*[0.1] * 6))]
    put("checkpoint", "checkpoint", safetensors(model + optimizer, layout))
    put("checkpoint", "state_dict", safetensors(model[:2], {"format": "pt"}))
    put("checkpoint", "bad_meta", safetensors(model[:1], dict(layout, **{"cudacnn.checkpoint": "{not json"})))
    put("checkpoint", "bad_options", safetensors(model[:1], dict(layout, **{"cudacnn.checkpoint": json.dumps(
        {"options": {"epochs": "many", "batch_size": [1], "lr": None}})})))
    put("checkpoint", "old_layout", safetensors(model[:1], dict(layout, **{"cudacnn.checkpoint_layout": "1"})))
    put("checkpoint", "stray_tensor", safetensors([("other.x", "F32", [1], f32(1))], layout))


# ---- model specs ----
def model_json():
    spec = (ROOT / "models" / "cifar_cnn.json").read_text()
    put("model_json", "cifar_cnn.json", spec)
    small = {"name": "small", "input": [3, 8, 8], "num_classes": 4, "layers": [
        {"name": "c", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "b", "type": "batch_norm2d", "num_features": 4}, {"name": "r", "type": "relu"},
        {"name": "p", "type": "max_pool2d", "kernel_size": 2, "stride": 2}, {"name": "d", "type": "dropout", "p": 0.5},
        {"name": "f", "type": "flatten"}, {"name": "l", "type": "linear", "in_features": 64, "out_features": 4}]}
    put("model_json", "small.json", json.dumps(small))
    put("model_json", "truncated.json", spec[: len(spec) // 2])
    put("model_json", "huge_channels.json", json.dumps(dict(small, layers=[
        {"name": "c", "type": "conv2d", "in_channels": 3, "out_channels": 1 << 40, "kernel_size": 3}])))
    put("model_json", "wrong_types.json", json.dumps(dict(small, input="3x8x8", layers={"c": 1})))


# ---- augmentation specs ----
def augment():
    texts = ["crop:32:4,hflip", "crop:32:4:reflect,hflip:0.3,jitter:0.4:0.4:0.4:0.1,grayscale:0.2",
             "affine:15:0.1/0.1:0.9-1.1:5:bilinear:0,rotation:30:nearest:0/0/0,centercrop:28",
             "resizedcrop:32:0.08-1:0.75-1.33,perspective:0.5:0.5:bilinear:0",
             "normalize:0.4914/0.4822/0.4465:0.2023/0.1994/0.2010,erasing:0.5:0.02-0.33:0.3-3.3:random",
             "crop:32:4,,hflip", "crop:-1", "jitter:nan"]
    for i, text in enumerate(texts):
        put("augment_spec", f"spec{i}", text)
    put("augment_json", "default.json", json.dumps([
        {"op": "crop", "size": 32, "padding": 4, "padding_mode": "constant", "fill": [0, 0, 0]}, {"op": "hflip"}]))
    put("augment_json", "many.json", json.dumps([
        {"op": "jitter", "brightness": [0.6, 1.4], "contrast": [0.6, 1.4], "saturation": [0.6, 1.4], "hue": [-0.1, 0.1]},
        {"op": "erasing", "p": 0.5, "scale": [0.02, 0.33], "ratio": [0.3, 3.3], "value": "random"},
        {"op": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        {"op": "affine", "degrees": 10, "translate": [0.1, 0.1], "scale": [0.9, 1.1], "shear": 5,
         "interpolation": "bilinear", "fill": 0},
        {"op": "resizedcrop", "size": 32, "scale": [0.08, 1], "ratio": [0.75, 1.33]}]))
    put("augment_json", "unknown_key.json", json.dumps([{"op": "hflip", "q": 1}]))
    put("augment_json", "not_array.json", '{"op": "hflip"}')


# ---- command lines: the program, then one argument a line ----
def cli():
    lines = {
        "train_basic": ["train", "--model", "cifar_cnn", "--dataset", "synthetic", "--epochs", "2", "-b", "64"],
        "train_schedule": ["train", "--dataset=synthetic", "--lr", "0.1", "--optimizer", "sgd", "--momentum", "0.9",
                           "--lr-schedule", "cosine:5", "--augment", "crop:32:4,hflip", "--seed", "7"],
        "train_bad": ["train", "--epochs", "-3", "--batch-size", "1e99", "--unknown"],
        "eval_basic": ["eval", "--checkpoint", "run/last.safetensors", "--tta", "--top-k", "3", "--limit", "10"],
        "eval_predict": ["eval", "--weights", "w.safetensors", "--model", "cifar_cnn", "--predict", "a.png", "b.jpg"],
        "bench_basic": ["bench", "--quick", "--json", "out.json", "--seed", "1"],
        "viz_filters": ["viz", "filters", "--checkpoint", "c.safetensors", "--max-filters", "8", "-o", "f.png"],
        "viz_augment": ["viz", "augment", "--dataset", "synthetic", "--augment", "crop:32:4,hflip", "--samples", "2"],
        "viz_adversarial": ["viz", "adversarial", "cat.jpg", "--eps", "8/255", "--weights", "w.safetensors"],
    }
    for name, words in lines.items():
        put("cli", name, "\n".join(words))


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    for make in (cifar, image, tensors, model_json, augment, cli):
        make()
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"{CORPUS.relative_to(ROOT)}: {sum(1 for p in CORPUS.rglob('*') if p.is_file())} files, {total} bytes")
