#!/usr/bin/python3
"""emb_mlir against PyTorch, in one process: forward, backward, call overhead.

Runs the DESIGN.md §7 shapes (V = 1M rows, B = 16384 bags, D in
{32, 64, 128, 256}, L in {1, 8, 32, 100}, uniform random indices) through
torch.nn.functional and through emb_mlir.torch (the drop-ins, autograd
included), plus a copy probe (torch's copy_ of 256 MiB with the same thread
count) measured in the same run. Prints markdown tables and saves a chart:

- forward: GB/s of compulsory traffic (rows read + indices + offsets +
  weights + output written), emb_mlir / copy probe, emb_mlir / torch;
- backward (D = 128, L = 32): milliseconds of autograd.grad, and the ratio;
- modules (D = 128, L = 32; D = 32, L = 8): emb_mlir.torch's, with the
  weight on huge pages (the default) and without, against torch.nn's:
  forward and a training step (forward + backward);
- call overhead (B = 1..64, L = 8, D = 64): microseconds per call, with a
  weight that does not and one that does require grad.

Absolute numbers are noise on shared machines; the ratios measured in one
run are the figures that count: the forward calls of both sides alternate,
so that both see the same machine. `--grid`: the forward sum / mean x
f32 / f16 / bf16 x D x L grid only, and the geometric mean. `--beyond`:
int8 / int4 bags against torch's quantised bag operators, sqrtn /
weighted-mean bags against our plain sum, and 26 tables in one call against
loops of 26 single-table calls (docs/semantics.md §6).

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/compare_torch.py
           [--quick] [--threads N] [--chart docs/images/compare_torch.png]
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as TF

import emb_mlir
import emb_mlir.torch as ET

V, B = 1_000_000, 16384
DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16,
          "bf16": torch.bfloat16}


def median_seconds(fn, iters, min_time=0.0):
    fn()  # compile / warm up
    times = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_seconds(fa, fb, iters, min_time=0.0):
    """Median seconds of fa and of fb, called in turn, so that both see the
    same machine (a shared machine's bandwidth drifts within seconds)."""
    fa()
    fb()
    ta, tb = [], []
    start = time.perf_counter()
    while len(ta) < iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        ta.append(t1 - t0)
        tb.append(time.perf_counter() - t1)
    return statistics.median(ta), statistics.median(tb)


def copy_probe(iters):
    """GB/s (read + write) of torch's copy_ of 256 MiB."""
    src = torch.rand(64 << 20)
    dst = torch.empty_like(src)
    t = median_seconds(lambda: dst.copy_(src), iters)
    return 2 * src.numel() * 4 / t / 1e9


_tables = {}


def table(D, dtype):
    key = (D, dtype)
    if key not in _tables:
        _tables.clear()  # one table at a time: D = 256 f64 is 2 GB
        g = torch.Generator().manual_seed(D)
        _tables[key] = (torch.rand(V, D, generator=g) * 2 - 1).to(dtype)
    return _tables[key]


def grid_cases():
    """Every sum / mean bag of the issue 13 targets."""
    return [dict(op="bag", mode=m, D=D, L=L, dtype=dt)
            for dt in ("f32", "f16", "bf16") for m in ("sum", "mean")
            for D in (32, 64, 128, 256) for L in (1, 8, 32, 100)]


def forward_cases(quick):
    grid = [(D, L) for D in (32, 64, 128, 256) for L in (1, 8, 32, 100)]
    if quick:
        grid = [(32, 8), (128, 32)]
    cases = [dict(op="bag", mode="sum", D=D, L=L) for D, L in grid]
    cases += [dict(op="bag", mode=m, D=128, L=32) for m in ("mean", "max")]
    cases += [
        dict(op="bag", mode="sum", D=128, L=32, padding=True),
        dict(op="bag", mode="sum", D=128, L=32, psw=True),
        dict(op="bag", mode="sum", D=128, L=32, two_d=True),
        dict(op="embedding", D=128, L=32),
        dict(op="embedding", D=32, L=8),
    ]
    if not quick:
        cases += [dict(op="bag", mode="sum", D=128, L=32, dtype=d)
                  for d in ("f16", "bf16", "f64")]
    return cases


def label(case):
    parts = [case["op"] if case["op"] == "embedding" else case["mode"]]
    for flag in ("padding", "psw", "two_d"):
        if case.get(flag):
            parts.append(flag.replace("_", "-"))
    return " ".join(parts)


def inputs(case, batch=B):
    D, L = case["D"], case["L"]
    dtype = DTYPES[case.get("dtype", "f32")]
    W = table(D, dtype) if batch == B else \
        (torch.rand(V // 100, D) * 2 - 1).to(dtype)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, W.shape[0], (batch * L,), generator=g)
    kw = {}
    if case["op"] == "embedding":
        return W, idx.view(batch, L), None, kw
    if case.get("two_d"):
        x, offsets = idx.view(batch, L), None
    else:
        x, offsets = idx, torch.arange(0, batch * L, L)
    kw["mode"] = case["mode"]
    if case.get("padding"):
        kw["padding_idx"] = 0
    if case.get("psw"):
        kw["per_sample_weights"] = torch.rand(x.shape).to(dtype)
    return W, x, offsets, kw


def traffic(case, W, x, offsets, kw):
    """Compulsory bytes: rows read, indices, offsets, weights, output."""
    esize = W.element_size()
    n = x.numel()
    bags = n if case["op"] == "embedding" else x.shape[0] if x.dim() == 2 \
        else offsets.numel()
    total = n * case["D"] * esize + n * x.element_size() + bags * case["D"] * esize
    if offsets is not None:
        total += offsets.numel() * offsets.element_size()
    if "per_sample_weights" in kw:
        total += n * esize
    return total


def call(fns, case, W, x, offsets, kw):
    F = fns
    if case["op"] == "embedding":
        return lambda: F.embedding(x, W)
    return lambda: F.embedding_bag(x, W, offsets, **kw)


def run_forward(cases, iters):
    rows = []
    for case in cases:
        W, x, offsets, kw = inputs(case)
        bytes_ = traffic(case, W, x, offsets, kw)
        theirs = None
        if W.dtype == torch.bfloat16 and case["op"] == "bag" and \
                torch.__version__ < "2":
            # torch 1.13 has no CPU bf16 embedding_bag.
            ours = median_seconds(call(ET, case, W, x, offsets, kw), iters)
        else:
            ours, theirs = paired_seconds(call(ET, case, W, x, offsets, kw),
                                          call(TF, case, W, x, offsets, kw),
                                          iters)
        rows.append(dict(case=case, name=label(case), gbps=bytes_ / ours / 1e9,
                         ours_ms=ours * 1e3,
                         torch_ms=None if theirs is None else theirs * 1e3))
        print(f"  {label(case)} D={case['D']} L={case['L']} "
              f"{case.get('dtype', 'f32')}: {ours * 1e3:.2f} ms", file=sys.stderr)
    return rows


def run_beyond(iters):
    """Issue 17's table (docs/semantics.md §6.1, §6.2), D = 128, L = 32:
    bags of int8 / int4 tables against torch's quantised bag operators
    (FBGEMM's kernels) on the same packed rows, and sqrtn / weighted-mean
    bags against our own plain sum, each pair called in turn."""
    D, L = 128, 32
    W = table(D, torch.float32)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (B * L,), generator=g)
    offsets = torch.arange(0, B * L, L)
    rows = []
    torch_ops = {8: torch.ops.quantized.embedding_bag_byte_rowwise_offsets,
                 4: torch.ops.quantized.embedding_bag_4bit_rowwise_offsets}
    for bits in (8, 4):
        packed = emb_mlir.quantize_rows(W, bits)
        ours, theirs = paired_seconds(
            lambda: emb_mlir.embedding_bag_quantized(x, packed, offsets,
                                                     mode="sum", bits=bits),
            lambda: torch_ops[bits](packed, x, offsets, mode=0), iters)
        row_bytes = packed.shape[1]
        gbps = (x.numel() * (row_bytes + 8) + B * D * 4) / ours / 1e9
        rows.append(dict(name=f"int{bits} sum", ours_ms=ours * 1e3,
                         ref_ms=theirs * 1e3, gbps=gbps,
                         ref=f"torch {torch_ops[bits].__name__.split('.')[-1]}"))
        print(f"  int{bits}: {ours * 1e3:.2f} ms", file=sys.stderr)
        del packed
    psw = torch.rand(B * L, generator=g) + 0.25
    plain = lambda: ET.embedding_bag(x, W, offsets, mode="sum")  # noqa: E731
    for name, kw in (("sqrtn", dict(mode="sqrtn")),
                     ("sqrtn weighted", dict(mode="sqrtn",
                                             per_sample_weights=psw)),
                     ("weighted mean", dict(mode="mean",
                                            per_sample_weights=psw)),
                     ("sum weighted", dict(mode="sum",
                                           per_sample_weights=psw))):
        ours, base = paired_seconds(
            lambda: ET.embedding_bag(x, W, offsets, **kw), plain, iters)
        gbps = (x.numel() * (D * 4 + 8) + B * D * 4) / ours / 1e9
        rows.append(dict(name=name, ours_ms=ours * 1e3, ref_ms=base * 1e3,
                         gbps=gbps, ref="emb_mlir sum"))
        print(f"  {name}: {ours * 1e3:.2f} ms", file=sys.stderr)
    return rows


def run_tables(iters, batch=4096):
    """26 tables in one call (docs/semantics.md §6.3), DLRM's Criteo shape:
    D = 64, V from 10 to 1M, L from 1 to 100, against a Python loop of 26
    torch.nn.functional.embedding_bag calls and of 26 calls of our own
    single-table op (each loop concatenating its outputs, as a model
    would)."""
    sizes = [1_000_000] * 3 + [100_000] * 5 + [10_000] * 8 + [1000] * 5 + \
        [100] * 3 + [10] * 2
    lengths = [1, 2, 5, 10, 20, 50, 100]
    D = 64
    g = torch.Generator().manual_seed(3)
    tables = [emb_mlir.Table(v, D, "sum") for v in sizes]
    weights = torch.rand(sum(v * D for v in sizes), generator=g) * 2 - 1
    views, values, offsets, at = [], [], [0], 0
    per_table = []
    for t, v in enumerate(sizes):
        views.append(weights[at:at + v * D].view(v, D))
        at += v * D
        L = lengths[t % len(lengths)]
        x = torch.randint(0, v, (batch * L,), generator=g)
        values.append(x)
        starts = offsets[-1] + torch.arange(0, batch * L, L)
        offsets.extend(starts[1:].tolist() + [offsets[-1] + batch * L])
        per_table.append((x, torch.arange(0, batch * L, L)))
    values = torch.cat(values)
    offsets = torch.tensor(offsets)

    def ours():
        return emb_mlir.embedding_bag_tables(values, offsets, weights, tables)

    def loop(fns):
        return lambda: torch.cat(
            [fns.embedding_bag(x, w, o, mode="sum")
             for (x, o), w in zip(per_table, views)], 1)

    assert torch.allclose(ours(), loop(TF)(), rtol=1e-4, atol=1e-4)
    rows = []
    for name, other in (("torch loop", loop(TF)), ("emb_mlir loop", loop(ET))):
        t_ours, t_other = paired_seconds(ours, other, iters)
        rows.append(dict(name=f"26 tables (B={batch})", ours_ms=t_ours * 1e3,
                         ref_ms=t_other * 1e3, ref=f"26 calls: {name}",
                         gbps=(values.numel() * (D * 4 + 8) +
                               batch * D * 26 * 4) / t_ours / 1e9))
        print(f"  26 tables vs {name}: {t_ours * 1e3:.2f} / "
              f"{t_other * 1e3:.2f} ms", file=sys.stderr)
    return rows


def backward_cases():
    return [
        ("bag sum", dict(op="bag", mode="sum", D=128, L=32), {}),
        ("bag mean", dict(op="bag", mode="mean", D=128, L=32), {}),
        ("bag max", dict(op="bag", mode="max", D=128, L=32), {}),
        ("bag sum sparse", dict(op="bag", mode="sum", D=128, L=32),
         dict(sparse=True)),
        ("bag sum psw (both grads)", dict(op="bag", mode="sum", D=128, L=32,
                                          psw=True), {}),
        ("embedding", dict(op="embedding", D=128, L=32), {}),
        ("embedding sparse", dict(op="embedding", D=128, L=32),
         dict(sparse=True)),
    ]


def run_backward(iters):
    rows = []
    for name, case, extra in backward_cases():
        W0, x, offsets, kw = inputs(case)
        kw = dict(kw, **extra)
        times = {}
        for side, F in (("ours", ET), ("torch", TF)):
            W = W0.detach().requires_grad_()
            wrt = [W]
            if "per_sample_weights" in kw:
                kw["per_sample_weights"] = kw["per_sample_weights"].detach() \
                    .requires_grad_()
                wrt.append(kw["per_sample_weights"])
            if case["op"] == "embedding":
                out = F.embedding(x, W, sparse=kw.get("sparse", False))
            else:
                out = F.embedding_bag(x, W, offsets, **kw)
            grad = torch.rand_like(out)
            times[side] = median_seconds(
                lambda: torch.autograd.grad(out, wrt, grad, retain_graph=True),
                iters)
        rows.append(dict(name=name, ours_ms=times["ours"] * 1e3,
                         torch_ms=times["torch"] * 1e3))
        print(f"  backward {name}: {times['ours'] * 1e3:.2f} ms", file=sys.stderr)
    # Coalesced: ours in one call, torch's sparse gradient then coalesce().
    W0, x, offsets, kw = inputs(dict(op="bag", mode="sum", D=128, L=32))
    W = W0.detach().requires_grad_()
    out = TF.embedding_bag(x, W, offsets, mode="sum", sparse=True)
    grad = torch.rand_like(out)
    ours = median_seconds(lambda: emb_mlir.embedding_bag_backward(
        grad, x, offsets, V, mode="sum", sparse=True, coalesced=True), iters)
    theirs = median_seconds(lambda: torch.autograd.grad(
        out, [W], grad, retain_graph=True)[0].coalesce(), iters)
    rows.append(dict(name="bag sum coalesced (torch: sparse grad + coalesce())",
                     ours_ms=ours * 1e3, torch_ms=theirs * 1e3))
    return rows


def run_modules(iters):
    """The modules as a model holds them: emb_mlir.torch's (weight on huge
    pages, the default; and with huge_pages=False) against torch.nn's, the
    forward without autograd and a training step (forward + backward into
    a fresh dense .grad), the three called in turn."""
    rows = []
    for op, D, L in (("bag", 128, 32), ("embedding", 128, 32), ("bag", 32, 8)):
        g = torch.Generator().manual_seed(2)
        idx = torch.randint(0, V, (B * L,), generator=g)
        offsets = torch.arange(0, B * L, L)
        if op == "bag":
            make = lambda cls, **kw: cls(V, D, mode="sum", **kw)
            classes = (torch.nn.EmbeddingBag, ET.EmbeddingBag)
            fwd = lambda m: m(idx, offsets)
        else:
            make = lambda cls, **kw: cls(V, D, **kw)
            classes = (torch.nn.Embedding, ET.Embedding)
            fwd = lambda m: m(idx.view(B, L))
        mods = {"torch": make(classes[0]), "ours": make(classes[1]),
                "ours_4k": make(classes[1], huge_pages=False)}
        row = dict(name=f"{'EmbeddingBag sum' if op == 'bag' else 'Embedding'}"
                        f" D={D} L={L}")
        seed = torch.rand_like(fwd(mods["torch"]))

        def step(m):
            m.weight.grad = None
            fwd(m).backward(seed)

        # The three in turn, every round, so that all see the same machine.
        for what, reps in (("fwd", 2 * iters), ("step", iters)):
            times = {key: [] for key in mods}
            for r in range(reps + 1):
                for key, m in mods.items():
                    t0 = time.perf_counter()
                    if what == "fwd":
                        with torch.no_grad():
                            fwd(m)
                    else:
                        step(m)
                    if r:  # the first round warms up
                        times[key].append(time.perf_counter() - t0)
            for key in mods:
                row[f"{key}_{what}_ms"] = statistics.median(times[key]) * 1e3
        del mods
        rows.append(row)
        print(f"  modules {row['name']}: {row['ours_fwd_ms']:.2f} ms", file=sys.stderr)
    return rows


def run_overhead():
    """Microseconds per forward call, without and with a weight that
    requires grad (the call then records an autograd node)."""
    rows = []
    for batch in (1, 4, 16, 64):
        for op in ("bag", "embedding"):
            case = dict(op=op, mode="sum", D=64, L=8)
            W, x, offsets, kw = inputs(case, batch)
            row = dict(name=f"{'embedding_bag sum' if op == 'bag' else 'embedding'} B={batch}")
            for grad in (False, True):
                W = W.detach().requires_grad_(grad)
                for side, F in (("ours", ET), ("torch", TF)):
                    # The least of 5 medians: a busy moment of the machine
                    # moves one median by microseconds.
                    t = min(median_seconds(call(F, case, W, x, offsets, kw),
                                           200, min_time=0.1)
                            for _ in range(5))
                    row[f"{side}{'_grad' if grad else ''}_us"] = t * 1e6
            rows.append(row)
    return rows


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def chart(path, fwd, bwd, over, probe):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 6),
                             gridspec_kw=dict(width_ratios=[3, 1.3, 1.3]))
    names = [f"{r['name']} D{r['case']['D']} L{r['case']['L']}"
             f"{' ' + r['case']['dtype'] if 'dtype' in r['case'] else ''}"
             for r in fwd]
    speed = [r["torch_ms"] / r["ours_ms"] if r["torch_ms"] else 0 for r in fwd]
    of_probe = [r["gbps"] / probe for r in fwd]
    pos = range(len(fwd))
    ax = axes[0]
    ax.bar([p - 0.2 for p in pos], speed, 0.4, label="speed-up over torch")
    ax.bar([p + 0.2 for p in pos], of_probe, 0.4, label="fraction of copy probe")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(pos))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_title(f"forward, V=1M B=16384 (copy probe {probe:.1f} GB/s)")
    ax.legend()
    ax = axes[1]
    ax.bar(range(len(bwd)), [r["torch_ms"] / r["ours_ms"] for r in bwd])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(bwd)))
    ax.set_xticklabels([r["name"] for r in bwd], rotation=70, ha="right",
                       fontsize=8)
    ax.set_title("backward speed-up over torch")
    ax = axes[2]
    for k, (key, name) in enumerate((("torch_us", "torch"),
                                     ("ours_us", "emb_mlir"),
                                     ("torch_grad_us", "torch, autograd"),
                                     ("ours_grad_us", "emb_mlir, autograd"))):
        ax.bar([p - 0.3 + 0.2 * k for p in range(len(over))],
               [r[key] for r in over], 0.2, label=name)
    ax.set_xticks(range(len(over)))
    ax.set_xticklabels([r["name"] for r in over], rotation=70, ha="right",
                       fontsize=8)
    ax.set_ylabel("us per call")
    ax.set_title("call overhead (D=64, L=8)")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"chart: {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="two forward shapes, fewer iterations")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for both (0: all hardware threads)")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--grid", action="store_true",
                    help="only the forward sum / mean x dtype x D x L grid, "
                         "with the geometric mean of the speed-ups")
    ap.add_argument("--beyond", action="store_true",
                    help="only the table of issue 17: int8 / int4 bags "
                         "against torch's quantised operators, sqrtn and "
                         "weighted mean against our sum")
    ap.add_argument("--chart", default="docs/images/compare_torch.png",
                    help="where to save the PNG chart ('' for none)")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    emb_mlir.configure(threads=threads)
    iters = args.iters or (3 if args.quick else 7)

    probe = copy_probe(iters)
    if args.beyond:
        rows = run_beyond(iters)
        for batch in (64, 256, 4096):  # serving to training batches
            rows += run_tables(iters, batch)
        print(f"\nemb_mlir {torch.__version__}, {threads} threads each, "
              f"V={V}, B={B}, D=128, L=32 (the 26 tables: see run_tables); "
              f"copy probe {probe:.1f} GB/s\n")
        print("| bag | emb_mlir ms | reference ms | reference | "
              "reference / emb_mlir | emb_mlir GB/s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['ours_ms']:.2f} | {r['ref_ms']:.2f} | "
                  f"{r['ref']} | {ratio(r['ref_ms'], r['ours_ms'])} | "
                  f"{r['gbps']:.1f} |")
        return
    if args.grid:
        fwd = run_forward(grid_cases(), iters)
        bwd, mods, over = [], [], []
        args.chart = ""
    else:
        fwd = run_forward(forward_cases(args.quick), iters)
        bwd = run_backward(iters)
        mods = run_modules(iters)
        over = run_overhead()

    print(f"\nemb_mlir against torch {torch.__version__}, {threads} threads "
          f"each, V={V}, B={B}; copy probe {probe:.1f} GB/s\n")
    print("| forward | D | L | dtype | emb_mlir ms | torch ms | emb_mlir GB/s "
          "| / copy probe | speed-up over torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in fwd:
        c = r["case"]
        torch_ms = "-" if r["torch_ms"] is None else f"{r['torch_ms']:.2f}"
        print(f"| {r['name']} | {c['D']} | {c['L']} | {c.get('dtype', 'f32')} "
              f"| {r['ours_ms']:.2f} | {torch_ms} | {r['gbps']:.1f} | "
              f"{r['gbps'] / probe:.2f} | {ratio(r['torch_ms'], r['ours_ms'])} |")
    speedups = [r["torch_ms"] / r["ours_ms"] for r in fwd if r["torch_ms"]]
    if speedups:
        print(f"\ngeometric mean of the forward speed-ups: "
              f"{math.exp(sum(map(math.log, speedups)) / len(speedups)):.2f} "
              f"over {len(speedups)} rows (min {min(speedups):.2f})")
    if args.grid:
        return
    print("\n| backward (D=128, L=32, autograd.grad) | emb_mlir ms | torch ms "
          "| speed-up over torch |")
    print("|---|---|---|---|")
    for r in bwd:
        print(f"| {r['name']} | {r['ours_ms']:.2f} | {r['torch_ms']:.2f} | "
              f"{ratio(r['torch_ms'], r['ours_ms'])} |")
    print("\n| module (forward: no_grad; step: forward + backward) | "
          "emb_mlir ms (huge pages) | emb_mlir ms (4 KiB) | torch ms | "
          "speed-up over torch (huge pages) | (4 KiB) |")
    print("|---|---|---|---|---|---|")
    for r in mods:
        for what in ("fwd", "step"):
            print(f"| {r['name']} {'forward' if what == 'fwd' else 'step'} | "
                  f"{r['ours_' + what + '_ms']:.2f} | {r['ours_4k_' + what + '_ms']:.2f} | "
                  f"{r['torch_' + what + '_ms']:.2f} | "
                  f"{ratio(r['torch_' + what + '_ms'], r['ours_' + what + '_ms'])} | "
                  f"{ratio(r['torch_' + what + '_ms'], r['ours_4k_' + what + '_ms'])} |")
    print("\n| call overhead (D=64, L=8) | emb_mlir us | torch us | "
          "torch / emb_mlir | with autograd: emb_mlir us | torch us | "
          "torch / emb_mlir |")
    print("|---|---|---|---|---|---|---|")
    for r in over:
        print(f"| {r['name']} | {r['ours_us']:.2f} | {r['torch_us']:.2f} | "
              f"{ratio(r['torch_us'], r['ours_us'])} | "
              f"{r['ours_grad_us']:.2f} | {r['torch_grad_us']:.2f} | "
              f"{ratio(r['torch_grad_us'], r['ours_grad_us'])} |")
    if args.chart:
        chart(args.chart, fwd, bwd, over, probe)


if __name__ == "__main__":
    main()
