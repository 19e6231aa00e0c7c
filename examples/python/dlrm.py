"""A small DLRM-style recommendation model trained with emb_mlir's drop-ins.

Sparse features (a few categorical tables, each a bag of ids per sample)
go through EmbeddingBag tables; dense features through a bottom MLP; the
pooled embeddings and the dense vector meet in pairwise dot products that a
top MLP turns into a click probability. The same model is built twice from
the same initial weights, once with torch.nn.EmbeddingBag and once with
emb_mlir.torch.EmbeddingBag (under torch.compile where torch has it), and
trained on the same synthetic click log: the loss curves agree.

    python examples/python/dlrm.py --steps 300
"""

import argparse
import time

import torch

import emb_mlir.torch as emb

TABLES = [  # (rows, mode): ids per sample vary from 1 to 5
    (5000, "sum"),
    (2000, "mean"),
    (800, "max"),
    (10000, "sum"),
]
DIM = 16
DENSE = 13


def mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


class DLRM(torch.nn.Module):
    def __init__(self, bag_class):
        super().__init__()
        self.tables = torch.nn.ModuleList(
            bag_class(rows, DIM, mode=mode) for rows, mode in TABLES)
        self.bottom = mlp([DENSE, 32, DIM])
        pairs = (len(TABLES) + 1) * len(TABLES) // 2
        self.top = mlp([DIM + pairs, 32, 1])

    def forward(self, dense, ids, offsets):
        x = self.bottom(dense)
        pooled = [table(i, o) for table, i, o in zip(self.tables, ids, offsets)]
        features = torch.stack([x] + pooled, dim=1)  # [B, T + 1, D]
        dots = features @ features.transpose(1, 2)
        rows, cols = torch.tril_indices(len(TABLES) + 1, len(TABLES) + 1, -1)
        return self.top(torch.cat([x, dots[:, rows, cols]], dim=1)).squeeze(1)


def batches(steps, batch, seed=0):
    """A synthetic click log: a few hot ids per table, a label that depends
    on them and on the dense features."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        dense = torch.randn(batch, DENSE, generator=g)
        ids, offsets, signal = [], [], dense[:, 0].clone()
        for rows, _ in TABLES:
            lengths = torch.randint(1, 6, (batch,), generator=g)
            n = int(lengths.sum())
            hot = torch.randint(0, 50, (n,), generator=g)
            cold = torch.randint(0, rows, (n,), generator=g)
            table_ids = torch.where(torch.rand(n, generator=g) < 0.5, hot, cold)
            offsets.append(torch.cat([torch.zeros(1, dtype=torch.int64),
                                      lengths.cumsum(0)[:-1]]))
            ids.append(table_ids)
            bag_of = torch.repeat_interleave(torch.arange(batch), lengths)
            signal += torch.zeros(batch).index_add_(
                0, bag_of, (table_ids % 7 == 0).float())
        labels = (signal > signal.median()).float()
        yield dense, ids, offsets, labels


def train(model, steps, batch, lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for dense, ids, offsets, labels in batches(steps, batch):
        optimizer.zero_grad()
        loss = loss_fn(model(dense, ids, offsets), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def twin_models(compile=True):
    """(torch's model, emb_mlir's model) with the same initial weights;
    emb_mlir's compiled with torch.compile(fullgraph=True) when torch has
    it and `compile`."""
    torch.manual_seed(0)
    reference = DLRM(torch.nn.EmbeddingBag)
    ours = DLRM(emb.EmbeddingBag)
    ours.load_state_dict(reference.state_dict())
    runnable = ours
    if compile and hasattr(torch, "compile") and emb._ops is not None and \
            hasattr(torch.library, "register_fake"):
        runnable = torch.compile(ours, fullgraph=True)
    return reference, ours, runnable


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    reference, module, ours = twin_models(compile=not args.no_compile)
    start = time.perf_counter()
    expected = train(reference, args.steps, args.batch)
    middle = time.perf_counter()
    got = train(ours, args.steps, args.batch)
    end = time.perf_counter()
    print(f"torch {torch.__version__}; emb_mlir "
          f"{'under torch.compile' if ours is not module else 'eager'}")
    for step in sorted({0, args.steps // 4, args.steps // 2, args.steps - 1}):
        print(f"step {step:4d}: loss torch {expected[step]:.6f}  "
              f"emb_mlir {got[step]:.6f}")
    worst = max(abs(a - b) for a, b in zip(expected, got))
    print(f"largest difference of the two loss curves: {worst:.2e}")
    print(f"time: torch {middle - start:.2f} s, emb_mlir {end - middle:.2f} s "
          "(including compilation)")
    return expected, got


if __name__ == "__main__":
    main()
