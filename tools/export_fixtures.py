#!/usr/bin/env python3
"""Real IR fixtures for raise-linalg-to-emb (issue 15 item 2): exports small
embedding models through torch-mlir (torch.export -> linalg on tensors) and
writes, per model, a lit test under test/Conversion/LinalgToEmb/fixtures/:

  - the model exactly as torch-mlir emitted it (its @main renamed @model);
  - a @main that calls it on fixed inputs and compares the result with
    torch's output, both embedded as constants, printing 1 when every
    element is within the tolerance;
  - RUN lines: what raise-linalg-to-emb turns it into (FileCheck of the emb
    ops it must contain, and of the linalg.generic gathers it must not),
    and the whole raised model through emb-cpu-pipeline in stock
    mlir-runner, which must print 1.

The tables are small, so the weights stay in the IR (no elision) and the
models run. The checked-in fixtures run in CI; this script runs where a
venv has torch 2.x and torch-mlir (pip install torch-mlir: 20261001 was
used with torch 2.15); with --iree, also iree-turbine and
iree-base-compiler (3.9 / 3.13 were used), whose forms go to fixtures/iree/
as raise-only tests (IREE's phases input and dispatch-creation):

  python tools/export_fixtures.py [--iree] [--out test/Conversion/LinalgToEmb/fixtures]
"""

import argparse
import os
import re
import textwrap

import numpy as np
import torch
import torch.nn.functional as F
from torch_mlir import fx

torch.manual_seed(0)


class Embedding(torch.nn.Module):
    def __init__(self, dtype=torch.float32, padding_idx=None):
        super().__init__()
        self.e = torch.nn.Embedding(50, 8, padding_idx=padding_idx,
                                    dtype=dtype)

    def forward(self, x):
        return self.e(x)


class Bag(torch.nn.Module):
    def __init__(self, mode="sum", psw=False):
        super().__init__()
        self.e = torch.nn.EmbeddingBag(50, 8, mode=mode)
        self.psw = psw

    def forward(self, x, o, *psw):
        return self.e(x, o, per_sample_weights=psw[0] if psw else None)


class Bag2D(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.e = torch.nn.EmbeddingBag(50, 8, mode=mode)

    def forward(self, x):
        return self.e(x)


class Classifier(torch.nn.Module):
    """A text classifier's shape: embedding, mean over the sequence, linear."""

    def __init__(self):
        super().__init__()
        self.e = torch.nn.Embedding(60, 16)
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.e(x).mean(1))


class DLRM(torch.nn.Module):
    """DLRM-like: a dense MLP, two sum bags, their interaction, a top MLP."""

    def __init__(self):
        super().__init__()
        self.bot = torch.nn.Linear(4, 8)
        self.t0 = torch.nn.EmbeddingBag(40, 8, mode="sum")
        self.t1 = torch.nn.EmbeddingBag(30, 8, mode="sum")
        self.top = torch.nn.Linear(8 * 3 + 3, 1)

    def forward(self, dense, x0, o0, x1, o1):
        d = torch.relu(self.bot(dense))
        e0, e1 = self.t0(x0, o0), self.t1(x1, o1)
        z = torch.stack([d, e0, e1], 1)               # [B, 3, 8]
        inter = torch.bmm(z, z.transpose(1, 2))       # [B, 3, 3]
        i, j = torch.triu_indices(3, 3, 1)
        flat = inter[:, i, j]                         # [B, 3]
        return torch.sigmoid(self.top(torch.cat([d, e0, e1, flat], 1)))


def ids(n, high, dtype=torch.int64, shape=None):
    return torch.randint(0, high, shape or (n,), dtype=dtype)


# name -> (module, inputs, [emb ops the raise must produce], notes)
def models():
    return {
        "embedding": (Embedding(), (ids(0, 50, shape=(2, 5)),),
                      ["emb.lookup"], "nn.Embedding, [2, 5] int64 ids"),
        "embedding_padding": (
            Embedding(padding_idx=0),
            (torch.tensor([[0, 3, 7], [9, 0, 49]]),), ["emb.lookup"],
            "padding_idx = 0 (its row is zeros in the weight)"),
        "embedding_f16": (Embedding(torch.float16), (ids(0, 50, shape=(6,)),),
                          ["emb.lookup"], "an f16 table"),
        "embedding_dynamic": (Embedding(), (ids(0, 50, shape=(3, 5)),),
                              ["emb.lookup"], "a dynamic batch (torch.export "
                              "Dim on dimension 0)"),
        "embedding_i32": (Embedding(), (ids(0, 50, torch.int32, (3, 4)),),
                          ["emb.lookup"], "int32 ids"),
        "bag_sum": (Bag(), (ids(10, 50), torch.tensor([0, 3, 3, 7])),
                    ["emb.bag sum"], "EmbeddingBag sum with offsets (an "
                    "empty bag)"),
        "bag_2d_mean": (Bag2D("mean"), (ids(0, 50, shape=(3, 4)),),
                        [], "EmbeddingBag mean, 2-D ids"),
        "bag_psw": (Bag(psw=True), (ids(8, 50), torch.tensor([0, 5]),
                                    torch.rand(8)),
                    ["emb.bag sum"], "EmbeddingBag sum with per_sample_weights. "
                    "torch-mlir drops the weights (its generic is a plain sum, "
                    "the weights' argument unused), so its IR, raised or not, "
                    "does not give torch's result: @main prints 0"),
        "classifier": (Classifier(), (ids(0, 60, shape=(2, 7)),),
                       ["emb.bag mean"], "embedding, mean(1), linear"),
        "dlrm": (DLRM(), (torch.rand(2, 4), ids(5, 40),
                          torch.tensor([0, 2]), ids(6, 30),
                          torch.tensor([0, 4])),
                 ["emb.bag sum", "emb.bag sum"], "two sum bags, MLPs, "
                 "pairwise interaction"),
    }


MLIR_TYPES = {torch.float32: "f32", torch.float16: "f16",
              torch.int64: "i64", torch.int32: "i32"}


def tensor_type(t):
    return "tensor<" + "".join(f"{d}x" for d in t.shape) + \
        MLIR_TYPES[t.dtype] + ">"


def dense(t):
    a = t.detach().cpu().numpy()
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    def rec(x):
        if x.ndim == 0:
            v = x.item()
            # MLIR float literals need a '.': 9 digits keep f32 exact.
            return "%.9e" % v if isinstance(v, float) else str(int(v))
        return "[" + ", ".join(rec(y) for y in x) + "]"
    return f"dense<{rec(a)}> : {tensor_type(t)}"


def harness(inputs, expected, tol, signature):
    """@main: the model on `inputs`, 1 printed when it is within `tol` of
    `expected` (elementwise, in f32). `signature`: the model's argument and
    result types (dynamic dims are cast to and from)."""
    arg_types, result_type = signature
    lines = ["func.func private @printI64(i64)",
             "func.func private @printNewline()", "",
             "func.func @main() {"]
    args = []
    for k, t in enumerate(inputs):
        lines.append(f"  %in{k} = arith.constant {dense(t)}")
        if arg_types[k] != tensor_type(t):
            lines.append(f"  %in{k}c = tensor.cast %in{k} : {tensor_type(t)} "
                         f"to {arg_types[k]}")
            args.append((f"%in{k}c", arg_types[k]))
        else:
            args.append((f"%in{k}", tensor_type(t)))
    out_type = tensor_type(expected)
    lines.append(f"  %want = arith.constant {dense(expected)}")
    lines.append(
        f"  %result = func.call @model({', '.join(a for a, _ in args)}) : "
        f"({', '.join(t for _, t in args)}) -> {result_type}")
    lines.append(f"  %got = tensor.cast %result : {result_type} to {out_type}")
    n = expected.numel()
    flat = f"tensor<{n}x{MLIR_TYPES[expected.dtype]}>"
    rank = expected.dim()
    reassoc = "[[" + ", ".join(str(i) for i in range(rank)) + "]]"
    lines += [
        f"  %g = tensor.collapse_shape %got {reassoc} : {out_type} into {flat}",
        f"  %w = tensor.collapse_shape %want {reassoc} : {out_type} into {flat}",
        "  %c0 = arith.constant 0 : index",
        "  %c1 = arith.constant 1 : index",
        f"  %cn = arith.constant {n} : index",
        f"  %tol = arith.constant {tol:.6e} : f32",
        "  %true = arith.constant 1 : i64",
        "  %ok = scf.for %i = %c0 to %cn step %c1 iter_args(%acc = %true) -> (i64) {",
        f"    %a = tensor.extract %g[%i] : {flat}",
        f"    %b = tensor.extract %w[%i] : {flat}",
    ]
    if expected.dtype != torch.float32:
        lines += ["    %af = arith.extf %a : f16 to f32",
                  "    %bf = arith.extf %b : f16 to f32"]
        a, b = "%af", "%bf"
    else:
        a, b = "%a", "%b"
    lines += [
        f"    %d = arith.subf {a}, {b} : f32",
        "    %m = math.absf %d : f32",
        "    %close = arith.cmpf ole, %m, %tol : f32",
        "    %ci = arith.extui %close : i1 to i64",
        "    %next = arith.andi %acc, %ci : i64",
        "    scf.yield %next : i64",
        "  }",
        "  func.call @printI64(%ok) : (i64) -> ()",
        "  func.call @printNewline() : () -> ()",
        "  return",
        "}",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(
        os.path.dirname(__file__), "..", "test", "Conversion", "LinalgToEmb",
        "fixtures"))
    p.add_argument("--iree", action="store_true",
                   help="also export through iree-turbine and iree-compile "
                   "(pip install iree-turbine iree-base-compiler)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, (module, inputs, raised, notes) in models().items():
        module.eval()
        with torch.no_grad():
            expected = module(*inputs)
        dynamic = {}
        if name.endswith("_dynamic"):
            dynamic = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
        try:
            ir = str(fx.export_and_import(module, *inputs,
                                          output_type="linalg-on-tensors",
                                          **dynamic))
        except Exception as e:  # torch-mlir lowers only some options
            print(f"skipped {name}: torch-mlir cannot lower it "
                  f"({str(e).splitlines()[0][:100]})")
            continue
        assert "func.func @main(" in ir
        ir = ir.replace("func.func @main(", "func.func @model(")
        tol = 1e-2 if expected.dtype == torch.float16 else 1e-5
        # What @main prints: 1, or 0 where torch-mlir's IR is not torch's.
        agrees = "torch-mlir drops" not in notes
        checks = [f"// RAISED: {op}" for op in raised] or [
            "// RAISED-NOT: emb."]
        if raised:
            checks.append("// RAISED-NOT: tensor.extract %cst")
        about = comment(
            f"{name}: {notes}. Exported by torch-mlir {_version()} from torch "
            f"{torch.__version__} (tools/export_fixtures.py; do not edit: "
            f"re-export). @model is torch-mlir's output as is; @main runs it "
            f"on fixed inputs against torch's output (1: every element within "
            f"{tol}).")
        text = f"""{about}
// RUN: emb-opt %s -raise-linalg-to-emb | FileCheck %s --check-prefix=RAISED
// RUN: emb-opt %s -raise-linalg-to-emb -emb-cpu-pipeline \\
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \\
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \\
// RUN:   | FileCheck %s
// Not raised, lowered by upstream MLIR alone: the same answer.
// RUN: %stock_mlir_opt %s -one-shot-bufferize=bufferize-function-boundaries \\
// RUN:     -convert-linalg-to-loops -convert-scf-to-cf -expand-strided-metadata \\
// RUN:     -lower-affine -convert-to-llvm -reconcile-unrealized-casts \\
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \\
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \\
// RUN:   | FileCheck %s
// RAISED-LABEL: func.func @model
{chr(10).join(checks)}
// CHECK: {1 if agrees else 0}
"""
        body = ir.rstrip()
        # The harness goes inside the module, before its resources.
        tail = ""
        if "{-#" in body:
            body, tail = body.split("{-#", 1)
            tail = "{-#" + tail
            body = body.rstrip()
        assert body.endswith("}")
        m = re.search(r"func\.func @model\((.*?)\) -> (\S+) \{", body)
        signature = ([a.split(": ", 1)[1] for a in m.group(1).split(", %")],
                     m.group(2))
        body = body[:-1].rstrip() + "\n" + harness(
            inputs, expected, tol, signature) + "\n}\n"
        with open(os.path.join(a.out, f"{name}.mlir"), "w") as f:
            f.write(text + "\n" + body + ("\n" + tail if tail else ""))
        print("wrote", name)
        if a.iree:
            export_iree(name, module, inputs, raised, notes.split(". ")[0],
                        a.out)


IREE_PHASES = ["input", "dispatch-creation"]


def comment(text):
    """`text` as an MLIR comment block of 76 columns."""
    return textwrap.fill(text, width=76, initial_indent="// ",
                         subsequent_indent="// ", break_on_hyphens=False)


def export_iree(name, module, inputs, raised, notes, out):
    """The model through iree-turbine (aot.export) and iree-compile, stopped
    after each phase of IREE_PHASES and printed in generic form: lit tests
    of what the raise makes of IREE's forms (IREE's own ops are unregistered
    for emb-opt; nothing runs)."""
    import subprocess
    import tempfile
    import iree.turbine.aot as aot
    from iree.compiler.tools import binaries
    compile_tool = binaries.find_tool("iree-compile")
    exported = str(aot.export(module, *inputs).mlir_module)
    for phase in IREE_PHASES:
        with tempfile.NamedTemporaryFile("w", suffix=".mlir") as f:
            f.write(exported)
            f.flush()
            ir = subprocess.run(
                [compile_tool, f.name, "--iree-input-type=torch",
                 f"--compile-to={phase}", "--iree-hal-target-device=local",
                 "--iree-hal-local-target-device-backends=llvm-cpu",
                 "--mlir-print-op-generic"], check=True,
                capture_output=True, text=True).stdout
        about = comment(
            f"{name}: {notes}. Exported by iree-turbine {_version('iree-turbine')}"
            f" and iree-compile {_version('iree-base-compiler')} "
            f"(--compile-to={phase}, generic form) from torch "
            f"{torch.__version__} (tools/export_fixtures.py; do not edit: "
            f"re-export).")
        checks = "\n".join(f"// CHECK: {op}" for op in raised) or \
            "// CHECK-NOT: emb."
        text = f"""{about}
// RUN: emb-opt %s -allow-unregistered-dialect -raise-linalg-to-emb \\
// RUN:   | FileCheck %s
{checks}

"""
        path = os.path.join(out, "iree", f"{name}.{phase}.mlir")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text + ir)
        print("wrote", os.path.relpath(path, out))


def _version(package="torch-mlir"):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
