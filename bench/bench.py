#!/usr/bin/python3
"""Forward benchmark of emb-mlir against PyTorch, a gather and a memcpy probe.

Runs the DESIGN.md §7 shapes (V = 1M rows, B = 16384 bags, D in
{32, 64, 128, 256}, L in {1, 8, 32, 100}, uniform random indices) through
`emb-run --bench --json` (which also runs, in the same process and with the
same thread count, a random-row gather probe of the same rows, timed in turn
with the kernel, and a memcpy probe) and through PyTorch in this process,
right after each other, and prints a markdown table of GB/s of compulsory
traffic (rows read + indices + offsets + weights + output written) and
ratios. Absolute numbers are noise on shared machines; the ratios measured
in one run are the figures that count.

Run it once per torch (`scripts/bench.sh` does: Debian's torch 1.13 and
torch 2.x from PyPI, FBGEMM inside, in a venv). `--grid` runs the whole
sum / mean x f32 / f16 / bf16 x D x L grid and prints the geometric mean of
the ratios.

Then the dense backward of the same shapes (D = 128, L = 32) against
PyTorch's autograd backward, in milliseconds per call.

Usage: /usr/bin/python3 bench/bench.py [--build build] [--threads 2] [--quick | --grid]
Needs a torch: Debian's python3-torch, or a venv's (scripts/bench.sh).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16,
          "bf16": torch.bfloat16}
SIZES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2}


HUGE_PAGES = []


def emb_run(build, threads, args, iters):
    cmd = [os.path.join(build, "bin", "emb-run"), "--threads", str(threads),
           "--bench", "--json", "--iters", str(iters)] + HUGE_PAGES + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_time(fn, iters):
    fn()
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def torch_case(case, V, B, iters):
    """Seconds per call of the PyTorch equivalent of `case`."""
    D, L, dtype = case["D"], case["L"], DTYPES[case.get("dtype", "f32")]
    g = torch.Generator().manual_seed(0)
    W = (torch.rand(V, D, generator=g) * 2 - 1).to(dtype)
    idx = torch.randint(0, V, (B * L,), generator=g)
    op = case["op"]
    if op == "embedding":
        x = idx.view(B, L)
        return median_time(lambda: F.embedding(x, W), iters)
    if op == "renorm":
        return median_time(
            lambda: torch.embedding_renorm_(W, idx, case["max_norm"], 2.0), iters)
    offsets = torch.arange(0, B * L, L)
    psw = torch.rand(B * L, generator=g).to(dtype) if case.get("psw") else None
    pad = case.get("pad")
    if pad is not None:
        idx[torch.randint(0, 20, (B * L,), generator=g) == 0] = pad
    return median_time(lambda: F.embedding_bag(
        idx, W, offsets, mode=case["mode"], per_sample_weights=psw,
        padding_idx=pad), iters)


def torch_backward(case, V, B, iters):
    """Seconds per backward call of the PyTorch equivalent (autograd)."""
    D, L = case["D"], case["L"]
    g = torch.Generator().manual_seed(0)
    W = (torch.rand(V, D, generator=g) * 2 - 1).requires_grad_(True)
    idx = torch.randint(0, V, (B * L,), generator=g)
    if case["op"] == "embedding_backward":
        forward = lambda: F.embedding(idx.view(B, L), W)
    else:
        offsets = torch.arange(0, B * L, L)
        forward = lambda: F.embedding_bag(idx, W, offsets, mode=case["mode"])
    grad = torch.rand_like(forward())

    def step():
        W.grad = None
        out = forward()
        t0 = time.perf_counter()
        out.backward(grad)
        return time.perf_counter() - t0

    step()
    times = sorted(step() for _ in range(iters))
    return times[len(times) // 2]


def emb_args(case, V, B):
    a = ["--op", case["op"], "--num-embeddings", str(V), "--dim", str(case["D"]),
         "--batch", str(B), "--bag-size", str(case["L"]),
         "--dtype", case.get("dtype", "f32")]
    if case["op"] in ("embedding_bag", "embedding_bag_backward"):
        a += ["--mode", case["mode"]]
    if case.get("psw"):
        a.append("--per-sample-weights")
    if case.get("pad") is not None:
        a += ["--padding-idx", str(case["pad"])]
    if case["op"] == "renorm":
        a += ["--max-norm", str(case["max_norm"])]
    return a


def grid_cases():
    """Every sum / mean bag of the issue 13 targets."""
    return [{"name": f"bag {mode}", "op": "embedding_bag", "mode": mode, "D": D,
             "L": L, "dtype": dt}
            for dt in ("f32", "f16", "bf16") for mode in ("sum", "mean")
            for D in (32, 64, 128, 256) for L in (1, 8, 32, 100)]


def cases(quick):
    dims = [64, 128] if quick else [32, 64, 128, 256]
    lens = [8, 32] if quick else [1, 8, 32, 100]
    out = []
    for D in dims:
        for L in lens:
            out.append({"name": "bag sum", "op": "embedding_bag", "mode": "sum", "D": D, "L": L})
    for D in ([128] if quick else [64, 128, 256]):
        out.append({"name": "bag mean", "op": "embedding_bag", "mode": "mean", "D": D, "L": 32})
    base = {"op": "embedding_bag", "D": 128, "L": 32}
    out += [
        dict(base, name="bag max", mode="max"),
        dict(base, name="bag sum, padding_idx", mode="sum", pad=0),
        dict(base, name="bag sum, per_sample_weights", mode="sum", psw=True),
        dict(base, name="bag sum, f64", mode="sum", dtype="f64"),
        dict(base, name="bag sum, f16", mode="sum", dtype="f16"),
        dict(base, name="bag sum, bf16", mode="sum", dtype="bf16"),
        {"name": "embedding", "op": "embedding", "D": 64, "L": 32},
        {"name": "embedding", "op": "embedding", "D": 128, "L": 32},
        {"name": "renorm (max_norm=1)", "op": "renorm", "D": 128, "L": 32, "max_norm": 1.0},
    ]
    return out


def backward_cases():
    base = {"op": "embedding_bag_backward", "D": 128, "L": 32}
    return [dict(base, name="bag backward sum", mode="sum"),
            dict(base, name="bag backward mean", mode="mean"),
            dict(base, name="bag backward max", mode="max"),
            {"name": "embedding backward", "op": "embedding_backward", "D": 128, "L": 32}]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num-embeddings", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="fewer shapes")
    p.add_argument("--grid", action="store_true",
                   help="the sum / mean x dtype x D x L grid only")
    p.add_argument("--no-backward", action="store_true")
    p.add_argument("--huge-pages", action="store_true",
                   help="our table (and the gather probe's) on 2 MiB pages; "
                        "torch's stays where torch puts it")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    V, B = args.num_embeddings, args.batch
    if args.huge_pages:
        HUGE_PAGES.append("--huge-pages")

    pages = "2 MiB" if args.huge_pages else "4 KiB"
    print(f"# emb-mlir forward benchmark: V={V}, B={B}, {args.threads} threads, "
          f"torch {torch.__version__}, our table on {pages} pages\n")
    print("| case | D | L | dtype | emb-mlir GB/s | gather GB/s | emb / gather | "
          "memcpy GB/s | emb / memcpy | torch GB/s | emb / torch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    sum_gbps, over_torch, over_gather = {}, [], []
    for case in grid_cases() if args.grid else cases(args.quick):
        ours = emb_run(args.build, args.threads, emb_args(case, V, B), args.iters)
        t_ours = ours["time_ms"] / 1e3
        try:
            t_torch = torch_case(case, V, B, max(3, args.iters // 3))
            torch_cols = (f"{ours['bytes'] / t_torch / 1e9:.2f} | "
                          f"{t_torch / t_ours:.2f}x")
            over_torch.append(t_torch / t_ours)
        except RuntimeError as e:  # e.g. bf16 embedding_bag in torch 1.13
            torch_cols = "n/a | n/a"
            print(f"<!-- torch: {str(e).splitlines()[0][:100]} -->", file=sys.stderr)
        gather_cols = "- | -"
        if "gather_gbps" in ours:
            gather_cols = f"{ours['gather_gbps']:.1f} | {ours['ratio_to_gather']:.2f}"
            over_gather.append(ours["ratio_to_gather"])
        if case["name"] == "bag sum" and case.get("dtype", "f32") == "f32":
            sum_gbps[(case["D"], case["L"])] = ours["gbps"]
        print(f"| {case['name']} | {case['D']} | {case['L']} | {case.get('dtype', 'f32')} | "
              f"{ours['gbps']:.1f} | {gather_cols} | {ours['memcpy_gbps']:.1f} | "
              f"{ours['ratio_to_memcpy']:.2f} | {torch_cols} |", flush=True)

    def geomean(xs):
        return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
    print(f"\ngeometric mean: emb / torch {geomean(over_torch):.2f}x over "
          f"{len(over_torch)} rows (min {min(over_torch, default=0):.2f}), "
          f"emb / gather {geomean(over_gather):.2f} (min "
          f"{min(over_gather, default=0):.2f})")
    if not args.grid and not args.no_backward:
        print("\n| backward (dense gradient) | D | L | emb-mlir ms | torch ms | emb / torch |")
        print("|---|---|---|---|---|---|")
        for case in backward_cases():
            ours = emb_run(args.build, args.threads, emb_args(case, V, B),
                           max(3, args.iters // 2))
            t_torch = torch_backward(case, V, B, 3)
            print(f"| {case['name']} | {case['D']} | {case['L']} | {ours['time_ms']:.1f} | "
                  f"{t_torch * 1e3:.1f} | {t_torch * 1e3 / ours['time_ms']:.1f}x |",
                  flush=True)
    if args.grid:
        return 0

    ref = sum_gbps.get((128, 32))
    if ref:
        print(f"\nplain bag sum at D=128, L=32: {ref:.1f} GB/s (the base of the "
              "'% of our plain sum' targets)")

    jit = emb_run(args.build, 1, ["--op", "jit", "--dim", "128"], 40)
    print(f"\nJIT (embedding_bag sum, D=128): cold compile {jit['cold_compile_ms']:.1f} ms "
          f"(median), disk-cache hit {jit['disk_hit_ms']:.2f} ms, memory-cache hit "
          f"{jit['memory_hit_us']:.3f} us, whole tiny call {jit['tiny_call_us']:.3f} us")


if __name__ == "__main__":
    sys.exit(main())
