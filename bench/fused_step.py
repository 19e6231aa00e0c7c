#!/usr/bin/python3
"""The backward fused with the optimizer (docs/semantics.md §6.4) against
PyTorch's sparse training step, in one process.

Shape: issue 18's, V = 1M rows, D = 128, B = 16384 bags of L = 32 uniform
random indices, f32, the thread count of --threads (default 2). For each
optimizer, the time of one training step with the forward excluded:

- torch: `out.backward(grad)` of torch.nn.EmbeddingBag(sparse=True) (the
  sparse gradient), then `opt.step()` and `opt.zero_grad()` with
  torch.optim.SGD / Adagrad / SparseAdam; row-wise Adagrad is compared with
  torch's Adagrad (torch has no row-wise one);
- emb_mlir: `out.backward(grad)` of emb_mlir.torch.FusedEmbeddingBag (the
  gradient and the step in one kernel).

The two alternate step by step (same machine state); medians over --iters
steps. Peak extra memory of a step (the growth of the peak resident size over
the step, in a fresh process per side and optimizer, after the table and
the states exist) shows what each materialises: torch's sparse gradient is
O(B * L * D), the fused step's sort arrays O(B * L) and one row.

`--tables`: DLRM's 26 tables (D = 64, V from 10 to 1M, L from 1 to 100,
as compare_torch.py --beyond), row-wise Adagrad: FusedEmbeddingBagCollection
(every table's step in one call) against 26 FusedEmbeddingBag modules and
against 26 torch EmbeddingBag(sparse=True) with one torch Adagrad.

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/fused_step.py
           [--threads N] [--iters K] [--small] [--tables]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

import emb_mlir
import emb_mlir.torch as ET

OPTIMIZERS = [("sgd", "sgd"), ("rowwise_adagrad", "adagrad"),
              ("adagrad", "adagrad"), ("adam", "adam")]


def torch_optimizer(name, params, lr):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    return torch.optim.SparseAdam(params, lr=lr)


def make(side, ours, theirs, shape, lr=0.01):
    V, D, B, L = shape
    torch.manual_seed(0)
    if side == "torch":
        module = torch.nn.EmbeddingBag(V, D, mode="sum", sparse=True)
        opt = torch_optimizer(theirs, module.parameters(), lr)

        def after():
            opt.step()
            opt.zero_grad()
        return module, after
    module = ET.FusedEmbeddingBag(V, D, mode="sum", optimizer=ours, lr=lr)
    return module, lambda: None


def inputs(shape, step):
    V, D, B, L = shape
    g = torch.Generator().manual_seed(step)
    ids = torch.randint(0, V, (B * L,), generator=g)
    offsets = torch.arange(0, B * L, L)
    grad = torch.randn(B, D, generator=g)
    return ids, offsets, grad


def one_step(module, after, shape, step):
    ids, offsets, grad = inputs(shape, step)
    out = module(ids, offsets)
    t0 = time.perf_counter()
    out.backward(grad)
    after()
    return time.perf_counter() - t0


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_memory(side, ours, theirs, shape):
    """MiB of peak resident growth over one step, after a warm-up step (the
    kernel compiled, lazy optimizer states made). Run in a fresh process
    with MALLOC_MMAP_THRESHOLD_ set, so that freed buffers leave the
    process; the peak is reset through /proc/self/clear_refs."""
    module, after = make(side, ours, theirs, shape)
    one_step(module, after, shape, 0)
    ids, offsets, grad = inputs(shape, 1)
    out = module(ids, offsets)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    out.backward(grad)
    after()
    return (_status_kib("VmHWM") - before) / 1024


def run_tables(iters, batch):
    sizes = [1_000_000] * 3 + [100_000] * 5 + [10_000] * 8 + [1000] * 5 + \
        [100] * 3 + [10] * 2
    lengths = [1, 2, 5, 10, 20, 50, 100]
    D, T = 64, len(sizes)
    g = torch.Generator().manual_seed(3)
    values, offsets, per_table = [], [0], []
    for t, v in enumerate(sizes):
        L = lengths[t % len(lengths)]
        x = torch.randint(0, v, (batch * L,), generator=g)
        values.append(x)
        starts = offsets[-1] + torch.arange(0, batch * L, L)
        offsets.extend(starts[1:].tolist() + [offsets[-1] + batch * L])
        per_table.append((x, torch.arange(0, batch * L, L)))
    values, offsets = torch.cat(values), torch.tensor(offsets)
    grad = torch.randn(batch, T * D, generator=g)
    coll = ET.FusedEmbeddingBagCollection([(v, D, "sum") for v in sizes],
                                          optimizer="rowwise_adagrad")
    singles = [ET.FusedEmbeddingBag(v, D, mode="sum", huge_pages=False)
               for v in sizes]
    torch_bags = [torch.nn.EmbeddingBag(v, D, mode="sum", sparse=True)
                  for v in sizes]
    opt = torch.optim.Adagrad([p for b in torch_bags for p in b.parameters()])

    def ours():
        out = coll(values, offsets)
        t0 = time.perf_counter()
        out.backward(grad)
        return time.perf_counter() - t0

    def loop(modules, after):
        outs = [m(x, o) for m, (x, o) in zip(modules, per_table)]
        out = torch.cat(outs, 1)
        t0 = time.perf_counter()
        out.backward(grad)
        after()
        return time.perf_counter() - t0

    def torch_after():
        opt.step()
        opt.zero_grad()

    times = {"ours": [], "singles": [], "torch": []}
    for step in range(iters + 1):
        for name, fn in (("ours", ours),
                         ("singles", lambda: loop(singles, lambda: None)),
                         ("torch", lambda: loop(torch_bags, torch_after))):
            t = fn()
            if step:
                times[name].append(t)
    m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"| 26 tables, B={batch} | {m['torch']:.1f} | {m['singles']:.1f} | "
          f"{m['ours']:.1f} | {m['torch'] / m['ours']:.2f}x | "
          f"{m['singles'] / m['ours']:.2f}x |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--small", action="store_true",
                   help="V = 100k, B = 2048 (a quick look)")
    p.add_argument("--tables", action="store_true",
                   help="DLRM's 26 tables, row-wise Adagrad")
    p.add_argument("--memory-of", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.filterwarnings("ignore", "Sparse invariant checks")
    torch.set_num_threads(args.threads)
    emb_mlir.configure(threads=args.threads)
    if args.tables:
        print(f"{args.threads} thread(s), torch {torch.__version__}, "
              "row-wise Adagrad (torch: Adagrad), forward excluded\n")
        print("| case | torch 26 bags + Adagrad ms | 26 FusedEmbeddingBag ms | "
              "FusedEmbeddingBagCollection ms | vs torch | vs 26 modules |")
        print("|---|---|---|---|---|---|")
        for batch in (256, 4096):
            run_tables(args.iters, batch)
        return
    shape = (100_000, 128, 2048, 32) if args.small else (1_000_000, 128,
                                                         16384, 32)
    if args.memory_of:
        print(json.dumps(peak_memory(*args.memory_of, shape)))
        return
    V, D, B, L = shape
    print(f"V={V} D={D} B={B} L={L} f32, {args.threads} thread(s), "
          f"torch {torch.__version__}\n")
    print("| optimizer (ours vs torch's) | torch step ms | fused step ms | "
          "speed-up | torch extra MiB | fused extra MiB |")
    print("|---|---|---|---|---|---|")
    for ours, theirs in OPTIMIZERS:
        sides = {s: make(s, ours, theirs, shape) for s in ("torch", "emb")}
        times = {"torch": [], "emb": []}
        for step in range(args.iters + 1):
            for side, (module, after) in sides.items():
                t = one_step(module, after, shape, step)
                if step > 0:  # the first compiles / allocates states
                    times[side].append(t)
        del sides
        mem = {}
        for side in ("torch", "emb"):
            cmd = [sys.executable, __file__, "--threads", str(args.threads),
                   "--memory-of", side, ours, theirs]
            if args.small:
                cmd.append("--small")
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
            mem[side] = float(subprocess.run(
                cmd, check=True, capture_output=True, text=True,
                env=env).stdout.strip().splitlines()[-1])
        t_torch = statistics.median(times["torch"]) * 1e3
        t_emb = statistics.median(times["emb"]) * 1e3
        print(f"| {ours} (torch {theirs}) | {t_torch:.1f} | {t_emb:.1f} | "
              f"{t_torch / t_emb:.2f}x | {mem['torch']:.0f} | "
              f"{mem['emb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
