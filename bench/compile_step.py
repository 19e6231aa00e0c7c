"""Training-step time of the DLRM-style model of examples/python/dlrm.py:
stock torch, emb_mlir's drop-ins eager, and the drop-ins under
torch.compile (torch >= 2.4), interleaved per step so that all three see
the same machine state. Issue 14's target: compiled <= eager drop-ins.

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
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| batch | torch eager ms | emb_mlir eager ms | emb_mlir compiled ms "
          "| compiled / eager |")
    print("|---|---|---|---|---|")
    for batch in args.batches:
        reference, ours, compiled = dlrm.twin_models(compile=True)
        eager_ours = dlrm.DLRM(dlrm.emb.EmbeddingBag)
        eager_ours.load_state_dict(ours.state_dict())
        runners = {"torch": reference, "eager": eager_ours,
                   "compiled": compiled}
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
        print(f"| {batch} | {med['torch']:.3f} | {med['eager']:.3f} | "
              f"{med['compiled']:.3f} | {med['compiled'] / med['eager']:.2f} |")


if __name__ == "__main__":
    main()
