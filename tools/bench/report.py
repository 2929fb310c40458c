#!/usr/bin/env python3
"""Merges cudacnn-bench's and tools/bench/pytorch_bench.py's JSON files (schema "cudacnn-bench/1") into one
Markdown table: one row per (op, shape, direction) that either side measured, one column per implementation
(median µs per call; images/s for train_step and infer_step; seconds for the epoch estimate), then the ratio of cudacnn's
best to PyTorch's eager fp32 (below 1: cudacnn is faster) and to PyTorch's best of all variants. The per-node records of
`cudacnn-bench --profile` (train_profile, infer_profile) follow in tables of their own, one per model and step variant.

    python3 tools/bench/report.py CUDACNN.json PYTORCH.json [--out REPORT.md]
"""
import argparse
import json
import sys

SCHEMA = "cudacnn-bench/1"
THROUGHPUT_OPS = ("train_step", "infer_step")  # shown as images/s, larger is better
PROFILE_OPS = ("train_profile", "infer_profile")  # per-node parts of one step: not comparable with PyTorch's rows
# Columns in this order where present; any other algorithm follows in the order met.
ORDER = ["cudnn", "cublas", "direct", "im2col", "kernel", "fused", "kernels", "cuda_graph", "cpu", "cpu_ref", "cpu_fused",
         "torch_eager", "torch_channels_last", "torch_tf32", "torch_bf16", "torch_compile", "torch_tv_loop", "torch_tv_batch"]
OPS = ["train_step", "infer_step", "epoch", "conv2d", "linear", "batch_norm2d", "relu", "max_pool2d", "avg_pool2d",
       "cross_entropy", "adam", "adamw", "sgd", "augment"]


def load(path):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"report.py: cannot read {path}: {e}")
    if report.get("schema") != SCHEMA:
        sys.exit(f"report.py: {path} is not a '{SCHEMA}' results file (schema {report.get('schema')!r})")
    return report


def value_of(r):
    """The number a cell shows and whether larger is better."""
    if r["op"] in THROUGHPUT_OPS:
        return r.get("images_per_s"), True
    if r["op"] == "epoch":
        return r.get("epoch_s"), False
    return r.get("median_us"), False


def cell(value, op):
    if value is None:
        return "–"
    if op in THROUGHPUT_OPS:
        return f"{value:,.0f} im/s"
    if op == "epoch":
        return f"{value:.2f} s"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def merge(reports):
    rows, algorithms = {}, []
    for report in reports:
        for r in report["records"]:
            if r["op"] == "roofline" or r["op"] in PROFILE_OPS or r.get("status") != "ok":
                continue
            value, _ = value_of(r)
            if value is None:
                continue
            key = (r["op"], r["shape"], r["direction"])
            rows.setdefault(key, {})[r["algorithm"]] = value
            if r["algorithm"] not in algorithms:
                algorithms.append(r["algorithm"])
    columns = [a for a in ORDER if a in algorithms] + [a for a in algorithms if a not in ORDER]
    return rows, columns


def ratio(ours, theirs, larger_better):
    if not ours or not theirs:
        return "–"
    return f"{(theirs / ours if larger_better else ours / theirs):.2f}"


def markdown(reports, paths):
    rows, columns = merge(reports)
    lines = ["# cudacnn-bench beside PyTorch", ""]
    for report, path in zip(reports, paths):
        lines.append(f"- `{path}`: {report.get('tool')} on {report.get('device')}, model {report.get('model')}, "
                     f"batch {report.get('batch_size')}, warm-up {report.get('warmup')}, repeats {report.get('repeats')}"
                     + (f", torch {report['torch']}" if "torch" in report else ""))
    for report in reports:
        for r in report["records"]:
            if r["op"] == "roofline" and r.get("status") == "ok":
                rate = f"{r['gbps']:.0f} GB/s" if r.get("gbps") else f"{r['gflops']:.0f} GFLOP/s"
                lines.append(f"- roofline {r['direction']} ({r['algorithm']}, {r['shape']}): {rate}")
    lines += ["", "Cells: median µs per call (train_step, infer_step: images/s; epoch: seconds for 50,000 images). "
              "Ratios: cudacnn's best over PyTorch (time ratio, or inverse throughput ratio): below 1 means "
              "cudacnn is faster.", ""]
    header = ["op", "shape", "direction"] + columns + ["ours / torch_eager", "ours / torch best"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + " --- |" * len(header))
    order = {op: i for i, op in enumerate(OPS)}
    directions = {d: i for i, d in enumerate(["forward", "backward_data", "backward_filter", "backward", "step"])}
    first_shape = {}
    for k in rows:
        first_shape.setdefault((k[0], k[1]), len(first_shape))
    for key in sorted(rows, key=lambda k: (order.get(k[0], len(OPS)), first_shape[(k[0], k[1])],
                                           directions.get(k[2], len(directions)))):
        op = key[0]
        values = rows[key]
        larger_better = op in THROUGHPUT_OPS
        pick = max if larger_better else min
        ours = [v for a, v in values.items() if not a.startswith("torch_")]
        theirs = [v for a, v in values.items() if a.startswith("torch_")]
        best_ours = pick(ours) if ours else None
        best_torch = pick(theirs) if theirs else None
        cells = [op, key[1], key[2]] + [cell(values.get(a), op) for a in columns]
        cells += [ratio(best_ours, values.get("torch_eager"), larger_better), ratio(best_ours, best_torch, larger_better)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + profile_tables(reports)) + "\n"


def profile_tables(reports):
    """One table per (pass, model and batch, step variant) of --profile's records: a row per node or other part
    (forward µs, backward µs, note: share, algorithm or where a fused node went), then the sum of the parts."""
    tables = {}  # (op, model and batch, algorithm) → rows in the order met
    for report in reports:
        for r in report["records"]:
            if r["op"] not in PROFILE_OPS:
                continue
            model, _, node = r["shape"].partition(",node=")
            name, _, kind = node.partition(",kind=")
            kind = kind.split(",out=")[0]
            rows = tables.setdefault((r["op"], model, r["algorithm"]), {})
            row = rows.setdefault(name or "(the step)", {"kind": kind, "note": r.get("note", "")})
            if r.get("status") != "ok":
                row["note"] = r.get("note", "") or r.get("status", "")
                continue
            row[r["direction"]] = r.get("median_us")
    lines = []
    for (op, model, algorithm), rows in tables.items():
        lines += ["", f"## {op}: {model}, {algorithm}", "",
                  "| node | kind | forward µs | backward µs | note |", "| --- | --- | --- | --- | --- |"]
        whole = rows.pop("(the step)", {})
        for name, row in rows.items():
            forward = row.get("forward", row.get("step"))
            lines.append(f"| {name} | {row['kind']} | {cell(forward, op)} | {cell(row.get('backward'), op)} | "
                         f"{row['note']} |")
        for direction in ("sum", "profiled_step"):
            if whole.get(direction) is not None:
                lines.append(f"| ({direction}) | | {cell(whole[direction], op)} | | |")
    return lines


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="results files of cudacnn-bench and pytorch_bench.py")
    parser.add_argument("--out", help="write the Markdown here (default: standard output)")
    args = parser.parse_args(argv)
    text = markdown([load(p) for p in args.files], args.files)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
