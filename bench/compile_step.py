"""Training-step time of the DLRM-style model of examples/python/dlrm.py:
stock torch eager and under torch.compile, emb_mlir's drop-ins eager and
under torch.compile (torch >= 2.4), interleaved per step so that all four
see the same machine state. Issue 14's target: compiled <= eager drop-ins;
issue 19's: the drop-ins no slower than torch at every batch size.

    v/bin/python bench/compile_step.py [--batches 64 1024 4096] [--steps 50]
"""

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "dlrm_example", ROOT / "examples" / "python" / "dlrm.py")
dlrm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dlrm)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+",
                        default=[64, 1024, 4096])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    # Bags of one id specialise (torch's 0/1 rule): with batch 1 each of the
    # four tables has 1 or more ids, up to 16 graphs; let them all compile
    # in the warm-up rather than hit the default limit of 8.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| batch | torch eager ms | torch compiled ms | emb_mlir eager ms "
          "| emb_mlir compiled ms | emb_mlir compiled / eager |")
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        torch._dynamo.reset()  # a new model per batch size: no recompile limit
        reference, ours, compiled = dlrm.twin_models(compile=True)
        eager_ours = dlrm.DLRM(dlrm.emb.EmbeddingBag)
        eager_ours.load_state_dict(ours.state_dict())
        torch_compiled = dlrm.DLRM(torch.nn.EmbeddingBag)
        torch_compiled.load_state_dict(reference.state_dict())
        runners = {"torch": reference, "eager": eager_ours,
                   "compiled": compiled,
                   "torch_compiled": torch.compile(torch_compiled,
                                                   fullgraph=True)}
        loss_fn = torch.nn.BCEWithLogitsLoss()
        optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.05)
                      for name, m in runners.items()}
        times = {name: [] for name in runners}
        data = list(dlrm.batches(args.warmup + args.steps, batch, seed=1))
        for i, (dense, ids, offsets, labels) in enumerate(data):
            for name, model in runners.items():
                start = time.perf_counter()
                optimizers[name].zero_grad()
                loss_fn(model(dense, ids, offsets), labels).backward()
                optimizers[name].step()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(f"| {batch} | {med['torch']:.3f} | {med['torch_compiled']:.3f} | "
              f"{med['eager']:.3f} | {med['compiled']:.3f} | "
              f"{med['compiled'] / med['eager']:.2f} |")


if __name__ == "__main__":
    main()
