#!/usr/bin/env python3
"""Many distinct kernels in one process (issue 16 item 8): calls N ops that
each need a kernel of their own (renorm with N distinct max_norm values: N
specs, N compiles) and reports the process's memory mappings as it goes,
against the kernel cache's bound (emb_mlir.configure(max_kernels=...)) and
Linux's limit (vm.max_map_count). Without a bound, every kernel stays
mapped (4-5 mappings each) and a process fails once past the limit.

Usage: bench/kernel_cache_bound.py [--specs 20000] [--max-kernels 1024]
(emb_mlir importable: PYTHONPATH=build/python, or a pip install)."""

import argparse
import time

import numpy as np

import emb_mlir


def mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", type=int, default=20000)
    p.add_argument("--max-kernels", type=int, default=1024)
    args = p.parse_args()
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    # Memory only: every spec is a compile and a fresh mapping.
    emb_mlir.configure(max_kernels=args.max_kernels, disk_cache=False)
    w = np.ones((8, 4), np.float32)
    idx = np.array([1, 2, 3], np.int64)
    start, t0, peak = mappings(), time.time(), 0
    print(f"vm.max_map_count {limit}; {start} mappings at start; "
          f"max_kernels {args.max_kernels}")
    for i in range(args.specs):
        emb_mlir.renorm_(w, idx, max_norm=1.0 + i * 1e-6)
        if (i + 1) % 1000 == 0 or i + 1 == args.specs:
            now = mappings()
            peak = max(peak, now)
            info = emb_mlir.info()
            print(f"{i + 1:6d} specs  {now:6d} mappings  "
                  f"{info['loaded_kernels']:5d} loaded  "
                  f"{info['evictions']:6d} evicted  "
                  f"{info['compiles']:6d} compiled  {time.time() - t0:7.1f} s",
                  flush=True)
    print(f"peak {peak} mappings ({100.0 * peak / limit:.1f}% of "
          f"vm.max_map_count)")


if __name__ == "__main__":
    main()
