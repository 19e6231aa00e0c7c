"""Tables on transparent huge pages: emb_mlir.empty_table (numpy),
emb_mlir.torch.empty_table, the modules' weights (from 2 MiB) and
embedding's outputs and the gradients (from 32 MiB) are 2 MiB aligned and advised MADV_HUGEPAGE (as /proc/self/smaps
says: "hg" in the mapping's VmFlags), hold the values torch's would, and
give their memory back. Runs on both autograd paths; the pure-Python one
allocates with torch (ordinary pages)."""

import os

import numpy as np
import pytest
import torch

import emb_mlir
import emb_mlir.torch as ET

CPP = ET._ops is not None
HUGE = 2 << 20
# madvise(MADV_HUGEPAGE) needs THP in the kernel; the advice is what is
# tested, not whether the kernel had huge pages free to back it.
HAS_THP = os.path.isdir("/sys/kernel/mm/transparent_hugepage")
needs_smaps = pytest.mark.skipif(not os.path.exists("/proc/self/smaps"),
                                 reason="reads /proc/self/smaps (Linux)")


def vm_flags(address):
    """The VmFlags of the mapping that holds `address` (None if none)."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(" ", 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    return None


def advised(address):
    return "hg" in (vm_flags(address) or [])


def count_mappings():
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def on_huge_pages(address):
    """What a table of >= 2 MiB must be: 2 MiB aligned, advised."""
    return address % HUGE == 0 and (advised(address) or not HAS_THP)


# numpy ----------------------------------------------------------------------

@needs_smaps
@pytest.mark.parametrize("dtype", ["f32", "f64", "f16", np.float32,
                                   np.dtype("float64"), "float16"])
def test_numpy_table_on_huge_pages(dtype):
    a = emb_mlir.empty_table(4096, 300, dtype)
    name = {"f32": np.float32, "f64": np.float64, "f16": np.float16}
    assert a.dtype == np.dtype(name.get(dtype, dtype))
    assert a.shape == (4096, 300) and a.flags.c_contiguous
    assert a.flags.writeable and not a.any()  # zero-filled
    assert on_huge_pages(a.ctypes.data)
    a[:] = 1.5
    assert (a == 1.5).all()


@needs_smaps
def test_numpy_small_and_plain_tables():
    small = emb_mlir.empty_table(10, 8)
    assert small.ctypes.data % 64 == 0 and not small.any()
    empty = emb_mlir.empty_table(0, 8)
    assert empty.shape == (0, 8)
    plain = emb_mlir.empty_table(4096, 512, huge_pages=False)
    assert plain.ctypes.data % 64 == 0 and not plain.any()
    assert not advised(plain.ctypes.data)


def test_numpy_table_as_a_weight():
    w = emb_mlir.empty_table(2048, 512)
    w[:] = np.arange(2048, dtype=np.float32)[:, None]
    x = np.array([[5, 2047], [0, 5]])
    np.testing.assert_array_equal(emb_mlir.embedding(x, w), w[x])


def test_numpy_table_dtypes_rejected():
    with pytest.raises(emb_mlir.EmbTypeError, match="numpy has no bf16"):
        emb_mlir.empty_table(4, 4, "bf16")
    for dtype in ("i64", np.int32, ">f4"):
        with pytest.raises(emb_mlir.EmbTypeError, match="f32, f64 or f16"):
            emb_mlir.empty_table(4, 4, dtype)
    with pytest.raises(emb_mlir.EmbValueError, match="non-negative"):
        emb_mlir.empty_table(-1, 4)
    with pytest.raises(emb_mlir.EmbValueError, match="does not fit"):
        emb_mlir.empty_table(2**40, 2**40)


@needs_smaps
def test_numpy_memory_lives_with_its_views_and_is_freed():
    a = emb_mlir.empty_table(1024, 1024)
    address = a.ctypes.data
    view = a[512:]
    del a
    view[:] = 2  # still mapped: the view holds the memory
    assert advised(address) or not HAS_THP
    del view
    assert vm_flags(address) is None  # unmapped with the last view
    before = count_mappings()
    for i in range(200):
        t = emb_mlir.empty_table(1024 + i, 1024, huge_pages=i % 2 == 0)
        t[-1] = 1
        del t
    assert count_mappings() <= before + 2


# torch ----------------------------------------------------------------------

@needs_smaps
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64,
                                   torch.float16, torch.bfloat16])
def test_torch_table(dtype):
    t = ET.empty_table(4096, 512, dtype)
    assert t.dtype == dtype and t.shape == (4096, 512) and t.is_contiguous()
    assert not t.any()
    assert on_huge_pages(t.data_ptr()) == CPP
    t.fill_(3)
    assert (t == 3).all()
    small = ET.empty_table(4, 4, dtype)
    assert not small.any()
    plain = ET.empty_table(4096, 512, dtype, huge_pages=False)
    assert not advised(plain.data_ptr())


def test_torch_table_dtypes_rejected():
    with pytest.raises(emb_mlir.EmbTypeError, match="float32, float64"):
        ET.empty_table(4, 4, torch.int64)
    with pytest.raises(emb_mlir.EmbValueError, match="non-negative"):
        ET.empty_table(4, -4)


@needs_smaps
def test_torch_tables_are_freed():
    t = ET.empty_table(1024, 1024)
    address = t.data_ptr()
    del t
    assert not advised(address)
    before = count_mappings()
    for i in range(200):
        t = ET.empty_table(1024 + i, 1024)
        t[-1] = 1
        del t
    assert count_mappings() <= before + 2


V, D = 20000, 64  # 5 MiB of f32


@needs_smaps
@pytest.mark.parametrize("cls", [ET.Embedding, ET.EmbeddingBag])
def test_module_weight_on_huge_pages_as_torch_initialises_it(cls):
    kwargs = dict(padding_idx=7)
    if cls is ET.EmbeddingBag:
        kwargs["mode"] = "sum"
    torch.manual_seed(3)
    ours = cls(V, D, **kwargs)
    torch.manual_seed(3)
    theirs = cls.__bases__[0](V, D, **kwargs)
    assert on_huge_pages(ours.weight.data_ptr()) == CPP
    assert isinstance(ours.weight, torch.nn.Parameter)
    assert ours.weight.requires_grad
    assert torch.equal(ours.weight, theirs.weight)  # normal_, zero pad row
    assert (ours.weight[7] == 0).all()
    x = torch.randint(0, V, (16, 4))
    torch.testing.assert_close(ours(x), theirs(x))


@needs_smaps
def test_module_dtype_and_positional_arguments():
    torch.manual_seed(1)
    ours = ET.Embedding(V, D, None, None, 2.0, False, False, None,
                        dtype=torch.float64)
    torch.manual_seed(1)
    theirs = torch.nn.Embedding(V, D, dtype=torch.float64)
    assert ours.weight.dtype == torch.float64
    assert on_huge_pages(ours.weight.data_ptr()) == CPP
    assert torch.equal(ours.weight, theirs.weight)


@needs_smaps
def test_module_huge_pages_off_and_small_weights():
    plain = ET.Embedding(V, D, huge_pages=False)
    assert not advised(plain.weight.data_ptr())
    small = ET.EmbeddingBag(100, 8)
    assert not advised(small.weight.data_ptr())
    given = torch.randn(V, D)
    shared = ET.Embedding(V, D, _weight=given)  # _weight: torch's sharing
    assert shared.weight.data_ptr() == given.data_ptr()
    meta = ET.Embedding(V, D, device="meta")
    assert meta.weight.device.type == "meta"


@needs_smaps
@pytest.mark.parametrize("cls", [ET.Embedding, ET.EmbeddingBag])
def test_from_pretrained_copies_or_shares(cls):
    table = torch.randn(V, D)
    module = cls.from_pretrained(table)
    assert module.weight.data_ptr() != table.data_ptr()
    assert on_huge_pages(module.weight.data_ptr()) == CPP
    assert torch.equal(module.weight, table)
    assert not module.weight.requires_grad
    table[0] = 100  # not shared
    assert module.weight[0, 0] != 100
    small = torch.randn(10, 4)
    assert cls.from_pretrained(small).weight.data_ptr() != small.data_ptr()
    shared = cls.from_pretrained(table, freeze=False, huge_pages=False)
    assert shared.weight.data_ptr() == table.data_ptr()
    assert shared.weight.requires_grad


@needs_smaps
def test_state_dict_and_training_keep_the_memory():
    ours = ET.EmbeddingBag(V, D, mode="sum")
    address = ours.weight.data_ptr()
    theirs = torch.nn.EmbeddingBag(V, D, mode="sum")
    ours.load_state_dict(theirs.state_dict())  # copied in place
    assert ours.weight.data_ptr() == address
    assert torch.equal(ours.weight, theirs.weight)
    theirs.load_state_dict(ours.state_dict())
    opt = torch.optim.SGD(ours.parameters(), lr=0.1)
    ids = torch.randint(0, V, (64, 3))
    ours(ids).pow(2).sum().backward()
    opt.step()
    assert ours.weight.data_ptr() == address
    assert not torch.equal(ours.weight, theirs.weight)


@needs_smaps
def test_large_embedding_output_on_huge_pages():
    """From 32 MiB, where malloc would map each output afresh (smaller
    outputs come warm from its heap)."""
    w = torch.randn(1000, 256)
    x = torch.randint(0, 1000, (32768,))  # 32 MiB out
    out = ET.embedding(x, w)
    assert on_huge_pages(out.data_ptr()) == CPP
    torch.testing.assert_close(out, w[x])
    wg = w.clone().requires_grad_()
    out = ET.embedding(x, wg)
    out.sum().backward()
    torch.testing.assert_close(
        wg.grad, torch.zeros_like(w).index_add_(0, x, torch.ones(32768, 256)))
    small = ET.embedding(x[:4096], w)  # 4 MiB: malloc's
    assert not advised(small.data_ptr())
    del out, small
    before = count_mappings()
    for _ in range(50):
        ET.embedding(x, w)
    assert count_mappings() <= before + 2


@needs_smaps
@pytest.mark.parametrize("op", ["embedding", "bag"])
def test_large_gradients_on_huge_pages(op):
    """The [V, D] dense gradient and the sparse gradient's values from 32
    MiB go on huge pages too (their first touch is the backward's cost)."""
    V, D, N = 65536, 128, 16384  # 32 MiB dense gradient, 8 MiB values
    g = torch.Generator().manual_seed(3)
    w = torch.randn(V, D, generator=g)
    x = torch.randint(0, V, (N,), generator=g)
    offsets = torch.arange(0, N, 4)

    def grads(fn, sparse):
        wg = w.clone().requires_grad_()
        ref = w.clone().requires_grad_()
        out = fn(ET, wg, sparse)
        seed = torch.randn(out.shape, generator=g)
        out.backward(seed)
        fn(torch.nn.functional, ref, sparse).backward(seed)
        return wg.grad, ref.grad

    if op == "embedding":
        fn = lambda m, weight, sparse: m.embedding(x, weight, sparse=sparse)
    else:
        fn = lambda m, weight, sparse: m.embedding_bag(
            x, weight, offsets, mode="sum", sparse=sparse)
    dense, ref = grads(fn, False)
    assert on_huge_pages(dense.data_ptr()) == CPP
    torch.testing.assert_close(dense, ref)
    sparse, ref = grads(fn, True)
    torch.testing.assert_close(sparse.to_dense(), ref.to_dense())
    if op == "bag":  # 32 MiB of values (embedding's are the incoming grad)
        x2 = torch.randint(0, V, (65536,), generator=g)
        wg = w.clone().requires_grad_()
        ET.embedding_bag(x2, wg, torch.arange(0, 65536, 4), mode="sum",
                         sparse=True).sum().backward()
        assert on_huge_pages(wg.grad._values().data_ptr()) == CPP


@needs_smaps
@pytest.mark.skipif(not hasattr(torch.library, "register_fake") or not CPP,
                    reason="torch.compile support needs torch >= 2.4 and "
                           "the C++ operators")
def test_large_output_under_torch_compile():
    emb = ET.Embedding(1000, 256)
    compiled = torch.compile(emb, fullgraph=True)
    x = torch.randint(0, 1000, (8, 4096))  # 32 MiB out
    out = compiled(x)
    torch.testing.assert_close(out, emb.weight[x])
    out.sum().backward()
    assert emb.weight.grad is not None


@needs_smaps
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_functional_large_outputs_on_huge_pages(kind):
    """The functional API's outputs from 32 MiB (a [V, D] gradient, sparse
    values) go on huge pages too, for numpy and torch callers alike."""
    V, D, N = 65536, 128, 8192  # 32 MiB gradient
    rng = np.random.default_rng(5)
    g = rng.standard_normal((N // 4, D)).astype(np.float32)
    x = rng.integers(0, V, N)
    off = np.arange(0, N, 4)
    ref = np.zeros((V, D), np.float32)
    np.add.at(ref, x, np.repeat(g, 4, axis=0))
    if kind == "torch":
        g, x, off = map(torch.from_numpy, (g, x, off))
    gw = emb_mlir.embedding_bag_backward(g, x, off, V, mode="sum")
    address = gw.data_ptr() if kind == "torch" else gw.ctypes.data
    assert on_huge_pages(address) == (kind == "numpy" or CPP)
    np.testing.assert_allclose(np.asarray(gw), ref, rtol=1e-5, atol=1e-5)
    # 4 MiB: an ordinary allocation (numpy's own, no base; for torch the
    # heap's advice depends on what else the process has mapped).
    small = emb_mlir.embedding_bag_backward(g, x % 8192, off, 8192, mode="sum")
    if kind == "numpy":
        assert small.base is None and gw.base is not None


@needs_smaps
@pytest.mark.skipif(not CPP, reason="the torch extension allocates them")
def test_functional_torch_outputs_without_importing_emb_mlir_torch():
    """A torch caller of the functional API who never imported
    emb_mlir.torch still gets huge-page outputs (a fresh process)."""
    import subprocess
    import sys
    code = (
        "import sys, torch, emb_mlir\n"
        "g = torch.rand(2048, 128); x = torch.randint(0, 65536, (8192,))\n"
        "gw = emb_mlir.embedding_bag_backward(g, x, torch.arange(0, 8192, 4),"
        " 65536, mode='sum')\n"
        "print(gw.data_ptr() % (2 << 20))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "0"
