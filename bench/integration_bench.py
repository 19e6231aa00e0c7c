#!/usr/bin/env python3
"""Why a compiler would integrate emb-mlir (issue 15 item 5): the same
embedding-heavy model, in the linalg form torch-mlir emits for it, lowered
by upstream MLIR alone and by raise-linalg-to-emb + emb-cpu-pipeline, run
in the same harness (stock mlir-runner at -O3, one thread, the same inputs
built inside the module) with the same checksum.

The models (torch-mlir's forms, as in test/Conversion/LinalgToEmb):
  bag     aten._embedding_bag (sum): the (bag, index, column) generic over a
          zero-filled output, with the offsets window in its body
  lookup  aten.embedding then mean over the sequence: the gathering generic
          [B, L, D], a sum reduction, a divide (a text classifier's front)

Upstream: one-shot-bufferize, convert-linalg-to-loops, scf-to-cf,
expand-strided-metadata, lower-affine, convert-to-llvm (what a linalg flow
without emb does with these generics). emb: raise-linalg-to-emb, then
emb-cpu-pipeline (the bag becomes emb.bag sum, the gather with its sum and
divide emb.bag mean: emb kernels; the rest lowers as upstream's).

Usage: bench/integration_bench.py [--emb-opt build/bin/emb-opt]
  [--rows 1000000] [--dim 64] [--batch 256] [--bag 32] [--iters 5]
Prints a markdown table (median ms per call, ratio) for docs/integration.md.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

LLVM = "/usr/lib/llvm-22"


def module(V, D, B, L, iters):
    N = B * L
    return f"""
#g0 = affine_map<(d0, d1, d2) -> (d1)>
#g1 = affine_map<(d0, d1, d2) -> (d0)>
#g2 = affine_map<(d0, d1, d2) -> (d0, d2)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#id1 = affine_map<(d0) -> (d0)>
#l0 = affine_map<(d0, d1, d2) -> (d0, d1)>
#l1 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#all = affine_map<(d0, d1) -> ()>

// torch-mlir's aten._embedding_bag (sum)
func.func @bag(%weight: tensor<{V}x{D}xf32>, %indices: tensor<{N}xi64>, %offsets: tensor<{B}xi64>) -> tensor<{B}x{D}xf32> {{
  %cst = arith.constant 0.000000e+00 : f32
  %nb = arith.constant {B} : i64
  %ni = arith.constant {N} : i64
  %0 = tensor.empty() : tensor<{B}x{D}xf32>
  %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<{B}x{D}xf32>) -> tensor<{B}x{D}xf32>
  %2 = linalg.generic {{indexing_maps = [#g0, #g1, #g2], iterator_types = ["parallel", "reduction", "parallel"]}} ins(%indices, %offsets : tensor<{N}xi64>, tensor<{B}xi64>) outs(%1 : tensor<{B}x{D}xf32>) {{
  ^bb0(%in: i64, %in_3: i64, %out: f32):
    %3 = linalg.index 0 : index
    %4 = arith.index_cast %3 : index to i64
    %c1_i64 = arith.constant 1 : i64
    %5 = arith.addi %4, %c1_i64 : i64
    %6 = arith.index_cast %5 : i64 to index
    %8 = arith.cmpi eq, %nb, %5 : i64
    %cl = arith.constant {B - 1} : index
    %safe = arith.minui %6, %cl : index
    %extracted = tensor.extract %offsets[%safe] : tensor<{B}xi64>
    %10 = arith.select %8, %ni, %extracted : i64
    %11 = linalg.index 1 : index
    %12 = arith.index_cast %11 : index to i64
    %13 = arith.cmpi slt, %in_3, %12 : i64
    %14 = arith.cmpi eq, %in_3, %12 : i64
    %15 = arith.ori %13, %14 : i1
    %16 = arith.cmpi slt, %12, %10 : i64
    %17 = arith.andi %15, %16 : i1
    %18 = arith.index_cast %in : i64 to index
    %19 = linalg.index 2 : index
    %extracted_4 = tensor.extract %weight[%18, %19] : tensor<{V}x{D}xf32>
    %20 = arith.addf %extracted_4, %out : f32
    %21 = arith.select %17, %20, %out : f32
    linalg.yield %21 : f32
  }} -> tensor<{B}x{D}xf32>
  return %2 : tensor<{B}x{D}xf32>
}}

// torch-mlir's aten.embedding, then mean over the sequence
func.func @lookup_mean(%ids: tensor<{B}x{L}xi64>, %table: tensor<{V}x{D}xf32>) -> tensor<{B}x{D}xf32> {{
  %zero = arith.constant 0.0 : f32
  %len = arith.constant {float(L)} : f32
  %e = tensor.empty() : tensor<{B}x{L}x{D}xf32>
  %rows = linalg.generic {{indexing_maps = [#l0, #l1], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%ids : tensor<{B}x{L}xi64>) outs(%e : tensor<{B}x{L}x{D}xf32>) {{
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %x = tensor.extract %table[%i, %d] : tensor<{V}x{D}xf32>
    linalg.yield %x : f32
  }} -> tensor<{B}x{L}x{D}xf32>
  %se = tensor.empty() : tensor<{B}x{D}xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<{B}x{D}xf32>) -> tensor<{B}x{D}xf32>
  %sum = linalg.generic {{indexing_maps = [#l1, #g2], iterator_types = ["parallel", "reduction", "parallel"]}} ins(%rows : tensor<{B}x{L}x{D}xf32>) outs(%sz : tensor<{B}x{D}xf32>) {{
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  }} -> tensor<{B}x{D}xf32>
  %me = tensor.empty() : tensor<{B}x{D}xf32>
  %mean = linalg.generic {{indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}} ins(%sum : tensor<{B}x{D}xf32>) outs(%me : tensor<{B}x{D}xf32>) {{
  ^bb0(%in: f32, %out: f32):
    %q = arith.divf %in, %len : f32
    linalg.yield %q : f32
  }} -> tensor<{B}x{D}xf32>
  return %mean : tensor<{B}x{D}xf32>
}}

func.func private @rtclock() -> f64
func.func private @printF64(f64)
func.func private @printNewline()

func.func @checksum(%t: tensor<{B}x{D}xf32>) -> f32 {{
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<f32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<f32>) -> tensor<f32>
  %s = linalg.generic {{indexing_maps = [#id2, #all], iterator_types = ["reduction", "reduction"]}} ins(%t : tensor<{B}x{D}xf32>) outs(%f : tensor<f32>) {{
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  }} -> tensor<f32>
  %v = tensor.extract %s[] : tensor<f32>
  return %v : f32
}}

func.func @report(%t0: f64, %t1: f64, %out: tensor<{B}x{D}xf32>) {{
  %dt = arith.subf %t1, %t0 : f64
  call @printF64(%dt) : (f64) -> ()
  call @printNewline() : () -> ()
  %c = call @checksum(%out) : (tensor<{B}x{D}xf32>) -> f32
  %c64 = arith.extf %c : f32 to f64
  call @printF64(%c64) : (f64) -> ()
  call @printNewline() : () -> ()
  return
}}

func.func @main() {{
  // The table: w[i, d] = ((i * 31 + d * 7) mod 97) / 97 - 0.5
  %we = tensor.empty() : tensor<{V}x{D}xf32>
  %w = linalg.generic {{indexing_maps = [#id2], iterator_types = ["parallel", "parallel"]}} outs(%we : tensor<{V}x{D}xf32>) {{
  ^bb0(%o: f32):
    %i = linalg.index 0 : index
    %d = linalg.index 1 : index
    %c31 = arith.constant 31 : index
    %c7 = arith.constant 7 : index
    %c97 = arith.constant 97 : index
    %a = arith.muli %i, %c31 : index
    %b = arith.muli %d, %c7 : index
    %s = arith.addi %a, %b : index
    %m = arith.remui %s, %c97 : index
    %mi = arith.index_cast %m : index to i64
    %mf = arith.uitofp %mi : i64 to f32
    %k = arith.constant 97.0 : f32
    %h = arith.constant 0.5 : f32
    %q = arith.divf %mf, %k : f32
    %v = arith.subf %q, %h : f32
    linalg.yield %v : f32
  }} -> tensor<{V}x{D}xf32>
  // Random rows: x[j] = (j * 2654435761 + 12345) mod V
  %xe = tensor.empty() : tensor<{N}xi64>
  %x = linalg.generic {{indexing_maps = [#id1], iterator_types = ["parallel"]}} outs(%xe : tensor<{N}xi64>) {{
  ^bb0(%o: i64):
    %j = linalg.index 0 : index
    %ji = arith.index_cast %j : index to i64
    %h = arith.constant 2654435761 : i64
    %c = arith.constant 12345 : i64
    %vv = arith.constant {V} : i64
    %p = arith.muli %ji, %h : i64
    %q = arith.addi %p, %c : i64
    %r = arith.remui %q, %vv : i64
    linalg.yield %r : i64
  }} -> tensor<{N}xi64>
  %oe = tensor.empty() : tensor<{B}xi64>
  %off = linalg.generic {{indexing_maps = [#id1], iterator_types = ["parallel"]}} outs(%oe : tensor<{B}xi64>) {{
  ^bb0(%o: i64):
    %b = linalg.index 0 : index
    %bi = arith.index_cast %b : index to i64
    %l = arith.constant {L} : i64
    %r = arith.muli %bi, %l : i64
    linalg.yield %r : i64
  }} -> tensor<{B}xi64>
  %ids = tensor.expand_shape %x [[0, 1]] output_shape [{B}, {L}] : tensor<{N}xi64> into tensor<{B}x{L}xi64>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cn = arith.constant {iters} : index
  scf.for %it = %c0 to %cn step %c1 {{
    %t0 = func.call @rtclock() : () -> f64
    %r = func.call @bag(%w, %x, %off) : (tensor<{V}x{D}xf32>, tensor<{N}xi64>, tensor<{B}xi64>) -> tensor<{B}x{D}xf32>
    %t1 = func.call @rtclock() : () -> f64
    func.call @report(%t0, %t1, %r) : (f64, f64, tensor<{B}x{D}xf32>) -> ()
    %t2 = func.call @rtclock() : () -> f64
    %m = func.call @lookup_mean(%ids, %w) : (tensor<{B}x{L}xi64>, tensor<{V}x{D}xf32>) -> tensor<{B}x{D}xf32>
    %t3 = func.call @rtclock() : () -> f64
    func.call @report(%t2, %t3, %m) : (f64, f64, tensor<{B}x{D}xf32>) -> ()
  }}
  return
}}
"""


UPSTREAM = ["-one-shot-bufferize=bufferize-function-boundaries",
            "-convert-linalg-to-loops", "-convert-scf-to-cf",
            "-expand-strided-metadata", "-lower-affine", "-convert-to-llvm",
            "-reconcile-unrealized-casts"]


def run(text, emb_opt, raised):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "model.mlir")
        with open(src, "w") as f:
            f.write(text)
        if raised:
            lower = [emb_opt, src, "-raise-linalg-to-emb", "-emb-cpu-pipeline"]
        else:
            lower = [f"{LLVM}/bin/mlir-opt", src] + UPSTREAM
        llvm_ir = subprocess.run(lower, check=True, capture_output=True,
                                 text=True).stdout
        if raised:
            # Check that the raise happened: the models hold no gather loop.
            raised_ir = subprocess.run(
                [emb_opt, src, "-raise-linalg-to-emb"], check=True,
                capture_output=True, text=True).stdout
            assert raised_ir.count("emb.bag sum") == 1, "the bag was not raised"
            assert raised_ir.count("emb.bag mean") == 1, \
                "the lookup and its mean were not raised"
        out = subprocess.run(
            [f"{LLVM}/bin/mlir-runner", "-O3", "-e", "main",
             "-entry-point-result=void",
             f"-shared-libs={LLVM}/lib/libmlir_runner_utils.so",
             f"-shared-libs={LLVM}/lib/libmlir_c_runner_utils.so"],
            input=llvm_ir, check=True, capture_output=True, text=True).stdout
    values = [float(v) for v in re.findall(r"^\s*(-?[\d.e+-]+|nan|inf)\s*$",
                                           out, re.M)]
    # Per iteration: bag time, bag checksum, lookup time, lookup checksum.
    rows = [values[i:i + 4] for i in range(0, len(values), 4)]
    return {
        "bag": (statistics.median(r[0] for r in rows) * 1e3, rows[0][1]),
        "lookup": (statistics.median(r[2] for r in rows) * 1e3, rows[0][3]),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb-opt", default=os.path.join(
        os.path.dirname(__file__), "..", "build", "bin", "emb-opt"))
    p.add_argument("--rows", type=int, default=1000000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--bag", type=int, default=32)
    p.add_argument("--iters", type=int, default=5)
    a = p.parse_args()
    text = module(a.rows, a.dim, a.batch, a.bag, a.iters)
    upstream = run(text, a.emb_opt, raised=False)
    emb = run(text, a.emb_opt, raised=True)
    print(f"V = {a.rows}, D = {a.dim}, B = {a.batch}, L = {a.bag} (f32), "
          f"median of {a.iters} calls, one thread, stock mlir-runner -O3\n")
    print("| model (torch-mlir's linalg form) | upstream MLIR alone (ms) | "
          "raised + emb (ms) | speedup | checksums |")
    print("|---|---|---|---|---|")
    for name, label in [("bag", "aten._embedding_bag sum"),
                        ("lookup", "aten.embedding + mean over L")]:
        (tu, cu), (te, ce) = upstream[name], emb[name]
        same = abs(cu - ce) <= 1e-3 * max(1.0, abs(cu))
        ratio = f"{tu / te:.1f}x" if te > 0 else "-"  # below the clock
        print(f"| {label} | {tu:.3f} | {te:.3f} | {ratio} | "
              f"{cu:.4f} / {ce:.4f}{'' if same else ' DIFFER'} |")
        if not same:
            sys.exit(f"{name}: the checksums differ")


if __name__ == "__main__":
    main()
