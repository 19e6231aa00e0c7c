#!/usr/bin/python3
"""GPU benchmark of emb-mlir's nvptx kernels against a device-to-device copy.

One script that builds, checks and times, for a machine with an NVIDIA GPU:

1. builds emb-run (skip with --no-build);
2. checks every kernel family on the device against the f64 reference
   (`emb-run --target nvptx --check`: forward sum / mean / max, lookup,
   renorm, dense backward of lookup and bags (atomic and deterministic),
   sparse gradients, the backward fused with an optimizer step,
   f32 / f16 / bf16 / f64);
3. times the DESIGN.md section 7 shapes (V = 1M rows, B = 16384 bags,
   D in {32, 64, 128, 256}, L in {1, 8, 32, 100}, uniform random indices)
   plus B = 65536, the forward bags in f32 (and f16 / bf16 at D = 128,
   L = 32), DLRM's 26 tables in one launch (D = 64, B = 4096, L = 20)
   and the dense backward, each with `emb-run --bench`: CUDA events
   around repeated calls, and in the same process a device-to-device copy
   of the same traffic (the probe). GB/s count compulsory traffic: rows
   read + indices + offsets + output written (backward: gradient rows read
   + indices + the V x D gradient written).
4. prints a short table, with the ratio to the probe and the targets
   of issue 5: bag sum / mean / max at D = 128, L = 32, f32 at >= 0.80 of
   the copy on an H100; dense backward at >= 0.50. The deterministic and
   sparse gradients are timed too (no target: they sort or compact first);
5. prints, last, what each timed forward kernel asks of an SM (registers,
   spills, theoretical occupancy on sm_80 / sm_90: `emb-run --resources`,
   ptxas), next to the bandwidth (`--resources`: that table alone, no GPU
   needed);
6. prints the bandwidth model's estimate for each timed forward kernel
   (`emb-run --transactions`: the kernel emulated with its memory traced,
   ptxas's occupancy, Little's law; docs/gpu.md) and the transactions of
   the dense backwards (coalescing of their atomics), and in the device's
   table a `model` column next to the measured ratio, so that one run
   tells whether the model holds (`--model`: the model's tables alone, no
   GPU needed).

Timed calls use --trust-indices (no index copy to the host, no stream
synchronisation: a caller with trusted indices); one row shows the cost of
validation. Without a driver or a device it says so, lists what it would
measure and exits 0 (CTest runs it that way on machines without a GPU).

Usage: /usr/bin/python3 bench/gpu_bench.py [--build build] [--no-build]
                                            [--quick] [--list] [--resources]
                                            [--model]
"""
import argparse
import json
import os
import subprocess
import sys

V = 1_000_000
B = 16384
DLRM_TABLES = ",".join(f"{v}x64:sum" for v in [1_000_000] * 3 + [100_000] * 5
                       + [10_000] * 8 + [1000] * 5 + [100] * 3 + [10] * 2)


def forward_cases(quick):
    dims = [128] if quick else [32, 64, 128, 256]
    lengths = [32] if quick else [1, 8, 32, 100]
    cases = []
    for mode in ["sum", "mean", "max"]:
        for d in dims:
            for l in lengths:
                cases.append(("embedding_bag", mode, "f32", d, l, B, []))
    cases.append(("embedding_bag", "sum", "f32", 128, 32, 65536, []))
    for dtype in ["f16", "bf16"]:
        cases.append(("embedding_bag", "sum", dtype, 128, 32, B, []))
    cases.append(("embedding", "-", "f32", 128, 32, B, []))
    # Many tables in one launch (docs/semantics.md §6.3): DLRM's 26
    # tables (D = 64, 1M down to 10 rows), 20 rows a bag each.
    cases.append(("embedding_bag", "sum", "f32", 64, 20, 4096,
                  ["--tables", DLRM_TABLES]))
    return cases


def backward_cases(quick):
    cases = [("embedding_bag_backward", mode, "f32", 128, 32, B, [])
             for mode in ["sum", "mean", "max"]]
    cases.append(("embedding_backward", "-", "f32", 128, 32, B, []))
    cases.append(("embedding_bag_backward", "sum", "f32", 128, 32, B,
                  ["--deterministic"]))
    cases.append(("embedding_bag_backward", "sum", "f32", 128, 32, B,
                  ["--sparse"]))
    cases.append(("embedding_bag_backward", "sum", "f32", 128, 32, B,
                  ["--sparse", "--coalesced"]))
    if not quick:
        cases.append(("embedding_bag_backward", "sum", "f16", 128, 32, B, []))
    # The backward fused with the optimizer (docs/semantics.md §6.4).
    for optimizer in ["sgd", "rowwise_adagrad", "adam"]:
        cases.append(("embedding_bag_backward", "sum", "f32", 128, 32, B,
                      ["--optimizer", optimizer]))
    return cases


# (op, extra flags) run with --check on small instances.
CHECKS = [
    ("embedding_bag", ["--mode", "sum", "--per-sample-weights"]),
    ("embedding_bag", ["--mode", "mean", "--padding-idx", "3"]),
    ("embedding_bag", ["--mode", "max", "--two-d"]),
    ("embedding_bag", ["--mode", "sum", "--dtype", "f16", "--dim", "64"]),
    ("embedding_bag", ["--mode", "mean", "--dtype", "bf16", "--dim", "17"]),
    ("embedding_bag", ["--mode", "max", "--dtype", "f64", "--dim", "100"]),
    ("embedding", ["--max-norm", "1.0"]),
    ("renorm", ["--max-norm", "0.5", "--norm-type", "3"]),
    ("embedding_backward", ["--scale-grad-by-freq"]),
    ("embedding_bag_backward", ["--mode", "mean", "--dtype", "f16"]),
    ("embedding_bag_backward", ["--mode", "max"]),
    ("embedding_bag_backward", ["--mode", "mean", "--deterministic",
                                "--scale-grad-by-freq"]),
    ("embedding_bag_backward", ["--mode", "max", "--deterministic"]),
    ("embedding_backward", ["--sparse", "--padding-idx", "3"]),
    ("embedding_bag_backward", ["--mode", "mean", "--sparse",
                                "--coalesced", "--dtype", "f16"]),
    ("embedding_bag_backward", ["--mode", "mean", "--optimizer",
                                "rowwise_adagrad", "--padding-idx", "3"]),
    ("embedding_bag_backward", ["--mode", "max", "--optimizer", "adam"]),
    ("embedding_backward", ["--optimizer", "adagrad", "--dtype", "bf16"]),
    ("embedding_bag", ["--tables", "5000x64:sum,100x8:mean,30x16:none,"
                       "50x32:max,20x17:sqrtn", "--padding-idx", "3"]),
    ("embedding_bag", ["--tables", "5000x128:mean,64x32:none", "--dtype",
                       "f16", "--per-sample-weights"]),
]

TARGETS = {"embedding_bag": 0.80, "embedding_bag_backward": 0.50,
           "embedding_backward": 0.50}


def emb_run(build, args):
    cmd = [os.path.join(build, "bin", "emb-run"), "--target", "nvptx"] + args
    return subprocess.run(cmd, capture_output=True, text=True)


def shape_args(op, mode, dtype, d, l, b, extra):
    args = ["--op", op, "--dtype", dtype, "--dim", str(d), "--bag-size",
            str(l), "--batch", str(b), "--num-embeddings", str(V)] + extra
    if mode != "-":
        args += ["--mode", mode]
    return args


def describe(op, mode, dtype, d, l, b, extra):
    name = op.replace("embedding_bag", "bag").replace("embedding", "lookup")
    if mode != "-":
        name += " " + mode
    for flag, short in [("--sparse", " sparse"), ("--coalesced", " coalesced"),
                        ("--deterministic", " deterministic")]:
        if flag in extra:
            name += short
    if "--optimizer" in extra:
        name += " + " + extra[extra.index("--optimizer") + 1]
    if "--tables" in extra:
        tables = extra[extra.index("--tables") + 1].count(",") + 1
        name += f", {tables} tables"
    return f"{name:<33} {dtype:<4} D={d:<3} L={l:<3} B={b}"


def print_resources(build, plan):
    """What each timed forward kernel asks of an SM (`emb-run --resources`:
    ptxas -v and the theoretical occupancy, sm_80 / sm_90), so that a device
    run shows it next to the bandwidth. Needs ptxas, not a GPU."""
    seen = set()
    print("\nresources (ptxas -v): registers / spill bytes / occupancy "
          "(bound by), first kernel of each")
    print(f"| {'kernel':<33} | {'sm_80':<28} | {'sm_90':<28} |")
    print(f"|{'-' * 35}|{'-' * 30}|{'-' * 30}|")
    for kind, case in plan:
        op, mode, dtype, d, l, b, extra = case
        if kind != "forward" or (op, mode, dtype, d) in seen:
            continue
        seen.add((op, mode, dtype, d))
        r = emb_run(build, shape_args(op, mode, dtype, d, l, b, extra) +
                    ["--resources", "--json"])
        if r.returncode != 0:
            print("  " + (r.stderr.strip().splitlines() or ["failed"])[-1])
            return
        first = {}
        for line in r.stdout.strip().splitlines():
            rep = json.loads(line)
            first.setdefault(rep["chip"], rep)
        cells = [f"{x['registers']} / {x['spill_store_bytes']} / "
                 f"{x['occupancy'] * 100:.0f}% ({x['limiter']})"
                 for x in (first.get("sm_80"), first.get("sm_90")) if x]
        name = " ".join(describe(op, mode, dtype, d, l, b, extra)
                        .split(" L=")[0].split())
        print(f"| {name:<33} | " + " | ".join(f"{c:<28}" for c in cells) + " |")


MODEL_CHIPS = ["A100", "H100", "H200"]
# The model's figures do not depend on L beyond the indices' sectors: the
# traced emulation runs at most 8 entries a bag (fast), at the case's B.
MODEL_MAX_L = 8


def model_key(case):
    op, mode, dtype, d, l, b, extra = case
    return (op, mode, dtype, d, b, tuple(extra))


def model_cases(plan, kind_wanted="forward"):
    """The timed forward kernels (row gathers: the model), or the dense
    atomic backwards (their transactions)."""
    seen, cases = set(), []
    for kind, case in plan:
        op, mode, dtype, d, l, b, extra = case
        if kind != kind_wanted or (
                extra and extra[0] not in ("--deterministic", "--tables")):
            continue  # sparse / fused: reported elsewhere
        if model_key(case) in seen:
            continue
        seen.add(model_key(case))
        cases.append(case)
    return cases


def run_model(build, case):
    """emb-run --transactions for `case`: {chip: useful fraction} of the
    kernel with the heaviest row gather, with its efficiency and loads in
    flight, and the peers' {layout: {chip: fraction}}; or an error line."""
    op, mode, dtype, d, l, b, extra = case
    r = emb_run(build, shape_args(op, mode, dtype, d, min(l, MODEL_MAX_L), b,
                                  extra) + ["--transactions", "--json"])
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["failed"])[-1]
    best, peers = None, {}
    for line in r.stdout.strip().splitlines():
        rep = json.loads(line)
        if "peer" in rep:
            peers.setdefault(rep["peer"], {})[rep["chip"]] = \
                rep["useful_fraction"]
        elif rep.get("model") and (
                best is None or rep["gather_sectors_per_request"] *
                rep["warps"] > best["gather_sectors_per_request"] *
                best["warps"]):
            best = rep
    if best is None:
        return None, "no kernel with a row gather (or no ptxas)"
    return {"fractions": {m["chip"]: m["useful_fraction"]
                          for m in best["model"]},
            "gather_efficiency": best["gather_efficiency"],
            "dram_efficiency": best["dram_efficiency"],
            "loads_in_flight": best["model"][0]["loads_in_flight"],
            "peers": peers}, None


def print_model(build, plan):
    """The model's table: our kernels on A100 / H100 / H200, then the
    same model for PyTorch's and FBGEMM's layouts (bag forwards). Needs
    ptxas, not a GPU. Returns {model_key: result}."""
    results = {}
    print("\nbandwidth model (emb-run --transactions; docs/gpu.md): useful "
          "fraction of peak DRAM bandwidth, 600 ns loaded latency")
    print(f"| {'kernel':<45} | gather eff | DRAM eff | loads/thread | "
          + " | ".join(f"{c:>5}" for c in MODEL_CHIPS)
          + " | PyTorch H100 | FBGEMM H100 |")
    print(f"|{'-' * 47}|---|---|---|" + "---|" * len(MODEL_CHIPS)
          + "---|---|")
    for case in model_cases(plan):
        res, err = run_model(build, case)
        name = " ".join(describe(*case).split(" L=")[0].split()) + \
            f" B={case[5]}"
        if err:
            print(f"| {name:<45} | {err} |")
            continue
        results[model_key(case)] = res
        peers = res["peers"]
        pt = next((v for k, v in peers.items() if k.startswith("PyTorch")), {})
        fb = next((v for k, v in peers.items() if k.startswith("FBGEMM")), {})
        cell = lambda f: f"{f * 100:4.0f}%" if f is not None else "    -"
        print(f"| {name:<45} | {res['gather_efficiency']:.3f} | "
              f"{res['dram_efficiency']:.3f} | {res['loads_in_flight']:.0f} | "
              + " | ".join(cell(res["fractions"].get(c)) for c in MODEL_CHIPS)
              + f" | {cell(pt.get('H100'))} | {cell(fb.get('H100'))} |")
    # The dense gradients: an atomic scatter (or, deterministic, a sort
    # and an ordered sum), not a row gather. Their transactions: the
    # coalescing of the atomics, of all loads and of all stores.
    print("\ndense gradients (emb-run --transactions): coalescing efficiency "
          "of the atomic scatter, the loads and the stores, DRAM efficiency")
    print(f"| {'kernel':<45} | atomics | loads | stores | DRAM eff |")
    print(f"|{'-' * 47}|---|---|---|---|")
    for case in model_cases(plan, "backward"):
        op, mode, dtype, d, l, b, extra = case
        r = emb_run(build, shape_args(op, mode, dtype, d,
                                      min(l, MODEL_MAX_L), b, extra) +
                    ["--transactions", "--json"])
        name = " ".join(describe(*case).split(" L=")[0].split()) + f" B={b}"
        if r.returncode != 0:
            print(f"| {name:<45} | "
                  f"{(r.stderr.strip().splitlines() or ['failed'])[-1]} |")
            continue
        kernels = [json.loads(x) for x in r.stdout.strip().splitlines()
                   if x.startswith('{"kernel"')]
        sums = {"atomic": [0, 0], "load": [0, 0], "store": [0, 0],
                "dram": [0, 0]}
        for k in kernels:
            for site in k["sites"]:
                if site["kind"] in sums:
                    sums[site["kind"]][0] += site["used_bytes"]
                    sums[site["kind"]][1] += 32 * site["sectors"]
            # Each sector once per warp, across the kernel's sites.
            sums["dram"][0] += k["warp_used_bytes"]
            sums["dram"][1] += 32 * k["warp_sectors"]
        eff = {k: (f"{u / t:.3f}" if t else "-")
               for k, (u, t) in sums.items()}
        print(f"| {name:<45} | {eff['atomic']} | {eff['load']} | "
              f"{eff['store']} | {eff['dram']} |")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="D = 128, L = 32 only")
    parser.add_argument("--list", action="store_true",
                        help="print what would be measured and exit")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--resources", action="store_true",
                        help="only the ptxas resource table (no GPU needed)")
    parser.add_argument("--model", action="store_true",
                        help="only the bandwidth model's table (no GPU "
                        "needed; ptxas is)")
    args = parser.parse_args()

    plan = [("forward", c) for c in forward_cases(args.quick)] + \
           [("backward", c) for c in backward_cases(args.quick)]

    def print_plan():
        print(f"checks: {len(CHECKS)} emb-run --check instances "
              "(forward, renorm, backward; every dtype)")
        print("timed (GB/s of compulsory traffic vs a device-to-device copy "
              "of the same bytes):")
        for _, case in plan:
            print("  " + describe(*case))

    if args.list:
        print_plan()
        return 0
    if args.resources:
        print_resources(args.build, plan)
        return 0
    if args.model:
        print_model(args.build, plan)
        return 0

    if not args.no_build:
        subprocess.run(["cmake", "--build", args.build, "--target", "emb-run"],
                       check=True)

    # Is there a device? The first check says.
    probe = emb_run(args.build, ["--op", "embedding", "--batch", "4",
                                 "--bag-size", "1", "--num-embeddings", "16",
                                 "--dim", "4", "--check"])
    # Only the shim's own "no driver / no device" errors mean there is no
    # GPU here; any other failure (a PTX the driver rejects, a missing ptxas)
    # is a failure of the run.
    no_gpu = ["the CUDA driver is not available", "no CUDA device",
              "stub library"]
    if probe.returncode != 0 and any(m in probe.stderr for m in no_gpu):
        print("gpu_bench: no usable GPU here, nothing measured: "
              + probe.stderr.strip().removeprefix("emb-run: error: "))
        print_plan()
        return 0
    if probe.returncode != 0:
        sys.stderr.write(probe.stdout + probe.stderr)
        return 1

    failures = 0
    print("checks against the f64 reference, on the device:")
    for op, extra in CHECKS:
        r = emb_run(args.build, ["--op", op, "--num-embeddings", "5000",
                                 "--batch", "300", "--bag-size", "7",
                                 "--check"] + extra)
        ok = r.returncode == 0
        failures += not ok
        print(f"  {'PASS' if ok else 'FAIL'}  {op} {' '.join(extra)}")
        if not ok:
            sys.stdout.write(r.stdout + r.stderr)

    rows = []
    for kind, case in plan:
        r = emb_run(args.build, shape_args(*case) + [
            "--bench", "--json", "--trust-indices", "--iters",
            str(args.iters)])
        if r.returncode != 0:
            failures += 1
            sys.stdout.write(r.stdout + r.stderr)
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append((describe(*case), case, res))
    # The cost of validating indices (a copy to the host and a sync).
    case = ("embedding_bag", "sum", "f32", 128, 32, B, [])
    r = emb_run(args.build, shape_args(*case) +
                ["--bench", "--json", "--iters", str(args.iters)])
    validated = None
    if r.returncode == 0:
        validated = json.loads(r.stdout.strip().splitlines()[-1])
    else:
        failures += 1
        sys.stdout.write(r.stdout + r.stderr)

    try:
        device = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        device = "the GPU"
    model = print_model(args.build, plan)
    chip = next((c for c in MODEL_CHIPS if c in device), "H100")
    print(f"\n{device}: GB/s of compulsory traffic, copy = device-to-device "
          "copy of the same bytes in the same process; model = the bandwidth "
          f"model's useful fraction of {chip}'s peak (above)")
    print(f"| {'shape':<57} | {'ms':>8} | {'GB/s':>7} | {'copy':>7} | "
          f"{'ratio':>5} | {'model':>5} | {'target':<9} |")
    print(f"|{'-' * 59}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 7}|"
          f"{'-' * 11}|")
    for name, case, res in rows:
        op, mode, dtype, d, l, b, extra = case
        target = TARGETS.get(op) if (d, l, dtype, b) == (128, 32, "f32", B) \
            and not extra else None
        mark = ""
        if target is not None:
            mark = f"{'ok' if res['ratio_to_memcpy'] >= target else 'MISS'} " \
                   f"{target:.2f}"
        m = model.get(model_key(case), {}).get("fractions", {}).get(chip)
        estimate = f"{m:5.2f}" if m is not None else "    -"
        print(f"| {name:<57} | {res['time_ms']:8.3f} | {res['gbps']:7.1f} | "
              f"{res['memcpy_gbps']:7.1f} | {res['ratio_to_memcpy']:5.2f} | "
              f"{estimate} | {mark:<9} |")
    if validated:
        print(f"| {'bag sum f32 D=128 L=32, validated':<57} | "
              f"{validated['time_ms']:8.3f} | {validated['gbps']:7.1f} | "
              f"{validated['memcpy_gbps']:7.1f} | "
              f"{validated['ratio_to_memcpy']:5.2f} | {'':>5} | {'':<9} |")
    print_resources(args.build, plan)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
