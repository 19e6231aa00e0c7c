"""examples/python/dlrm.py, short: the drop-ins (compiled where torch can)
train the DLRM-style model along stock torch's loss curve."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "dlrm.py"


@pytest.fixture(scope="module")
def dlrm():
    spec = importlib.util.spec_from_file_location("dlrm_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loss_curve_follows_torch(dlrm):
    expected, got = dlrm.main(["--steps", "40", "--batch", "64"])
    assert len(got) == 40
    assert max(abs(a - b) for a, b in zip(expected, got)) < 1e-3
    assert sum(got[-10:]) < sum(got[:10])  # it learns
