#!/usr/bin/python3
"""emb_mlir's bag forward timed the way a model calls it: right after a torch
op (issue 19).

After every parallel torch op, torch's OpenMP workers spin for a while
waiting for the next one. A library with a pool of its own then competes
with them for the cores; one that runs on torch's pool does not. For each
case (V = 1M, B = 16384, f32, D in {32, 64, 128, 256}, L in {1, 8, 32,
100}, sum and mean) this measures, in one process:

- blocks: emb_mlir.torch.embedding_bag called back to back;
- alternating: each emb_mlir call right after a torch.nn.functional
  embedding_bag call (only the emb_mlir call is timed), through
  emb_mlir.torch (torch's pool, at::parallel_for) and through the numpy
  API (the engine's own pool: what every call paid before issue 19);

then runs itself again with OMP_WAIT_POLICY=PASSIVE (torch's workers
sleep at once: no competition) and prints the ratio of the alternating
times, default policy over passive. Issue 19's target: >= 0.95 for every
row, i.e. alternating with torch costs no more than with sleeping workers.

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/alternating.py
           [--quick] [--threads N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as TF

import emb_mlir
import emb_mlir.torch as ET

V, B = 1_000_000, 16384


def case_inputs(D, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B * L,), generator=g)
    offsets = torch.arange(0, B * L, L)
    return ids, offsets


def measure(D, L, mode, iters):
    weight = torch.randn(V, D)
    ids, offsets = case_inputs(D, L)
    ids_np, off_np, w_np = ids.numpy(), offsets.numpy(), weight.numpy()
    ours = lambda: ET.embedding_bag(ids, weight, offsets, mode=mode)
    own_pool = lambda: emb_mlir.embedding_bag(ids_np, w_np, off_np, mode=mode)
    theirs = lambda: TF.embedding_bag(ids, weight, offsets, mode=mode)
    for fn in (ours, own_pool, theirs):
        fn()

    def timed(fn, before=None):
        times = []
        for _ in range(iters):
            if before:
                before()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    return {"blocks": timed(ours), "alternating": timed(ours, theirs),
            "own_pool_alternating": timed(own_pool, theirs),
            "torch_alternating": timed(theirs, ours)}


def run_cases(cases, iters):
    results = {}
    for D, L, mode in cases:
        results[f"{D},{L},{mode}"] = measure(D, L, mode, iters)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        emb_mlir.configure(threads=args.threads)
    dims = [32, 128] if args.quick else [32, 64, 128, 256]
    lengths = [1, 32] if args.quick else [1, 8, 32, 100]
    cases = [(D, L, mode) for D in dims for L in lengths
             for mode in ("sum", "mean")]
    iters = 10 if args.quick else 30
    results = run_cases(cases, iters)
    if args.child:
        print(json.dumps(results))
        return
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    child = subprocess.run([sys.executable, __file__, "--child"] +
                           (["--quick"] if args.quick else []) +
                           (["--threads", str(args.threads)]
                            if args.threads else []),
                           env=env, capture_output=True, text=True,
                           check=True)
    passive = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{emb_mlir.info()['torch_executor']}")
    print("| D | L | mode | blocks ms | alternating ms | own pool alternating ms "
          "| torch ms | passive alternating ms | passive / alternating |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = None
    for key, r in results.items():
        D, L, mode = key.split(",")
        p = passive[key]
        ratio = p["alternating"] / r["alternating"]
        worst = ratio if worst is None else min(worst, ratio)
        print(f"| {D} | {L} | {mode} | {r['blocks']:.3f} | "
              f"{r['alternating']:.3f} | {r['own_pool_alternating']:.3f} | "
              f"{r['torch_alternating']:.3f} | {p['alternating']:.3f} | "
              f"{ratio:.2f} |")
    print(f"\nworst passive / alternating: {worst:.2f} (target >= 0.95)")


if __name__ == "__main__":
    main()
