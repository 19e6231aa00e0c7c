//===- Passes.td - emb conversion passes -------------------*- tablegen -*-===//

#ifndef EMB_CONVERSION_PASSES_TD
#define EMB_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertEmbToSCF : Pass<"convert-emb-to-scf"> {
  let summary = "Lower emb ops to scf loops over vectors of whole rows";
  let description = [{
    Lowers every emb op. The forward ops (`emb.lookup`, `emb.bag`,
    `emb.renorm`) become `scf.for` loops on tensors whose bodies move whole
    rows (or D-blocks of rows: 2 KiB of loop-carried state per block, see
    `lib/Conversion/EmbCommon/CPUConfig.h`) with `vector.transfer_read` / `vector.transfer_write`: D
    is static in a specialised kernel, so a row of accumulators stays in
    registers and there are no per-element gathers. Up to 4 D-blocks are
    unrolled; a longer row is an `scf.for` over its full blocks (LLVM told
    not to unroll it) plus the partial tail block, so the IR and the compile
    time do not grow with D. f16 / bf16 accumulate
    in f32; f64 in f64. The output `tensor.empty` is a candidate for
    empty-tensor elimination, so a kernel writes straight into its
    destination.

    Dense gradients (`emb.lookup_grad`, `emb.bag_grad`; for max the keys are
    the gW elements `max_indices * D + column`, and f32 / f64 add directly
    in bag order) sort the positions by row with a stable LSD radix sort
    (8-bit digits, as many passes as V needs) and accumulate each row's
    contributions in input order, in f32 (f64 for f64), writing it once:
    deterministic, f32 accumulation for f16 / bf16, no scratch proportional
    to V. `emb.bag_psw_grad` is one dot product per entry. The sparse forms
    compact the non-padding positions in input order (uncoalesced) or write
    one summed row per run of the same sort (coalesced). `emb.bag_update`
    (the gradient fused with an optimizer step) walks the same sort's runs:
    each row's contributions summed into one scratch row, then the row of
    the table and of its state updated once, in place; the incoming
    gradient's rows are prefetched (`memref.prefetch` on a read-only
    `bufferization.to_buffer` of it) a few entries ahead.

    Each op is one rewrite pattern (lib/Conversion/EmbToSCF/Forward.cpp,
    DenseGrad.cpp, SparseGrad.cpp, BagUpdate.cpp); `populateEmbToSCFPatterns` adds them
    to another compiler's pattern set.
  }];
  let options = [
    Option<"blockBytes", "block-bytes", "int64_t", /*default=*/"0",
           "Bytes of loop-carried state (accumulators, argmax) per D-block; "
           "0: the CPU heuristic (lib/Conversion/EmbCommon/CPUConfig.h)">,
    Option<"argmaxSegment", "argmax-segment", "int64_t", /*default=*/"0",
           "Entries of a max bag whose argmax is tracked as i32 positions "
           "(a longer bag is taken in segments of this many); 0: 2^31 - 1. "
           "Tests pin it small">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect", "::mlir::vector::VectorDialect"
  ];
}

def ConvertEmbToGPU : Pass<"convert-emb-to-gpu"> {
  let summary = "Lower the emb ops to gpu.launch kernels";
  let description = [{
    `emb.lookup` and `emb.bag` (every mode and option, `max_indices`
    included) become one `gpu.launch` each. Every row (lookup) or bag gets
    a group of threads, a power of two up to a warp, that moves 16-byte
    vectors (`vector.load` of `vector<4xf32>`, `<8xf16>`, `<2xf64>` when D
    allows, one element otherwise) and accumulates in f32 for f16 / bf16;
    a block is 256 threads, the grid covers the rows and is computed at run
    time (nothing is launched for zero rows). The heuristics live in
    `lib/Conversion/EmbCommon/GPUConfig.h`. Operands become buffers through `bufferization.to_buffer`;
    a result whose only use is `bufferization.materialize_in_destination`
    into a row-major memref that exists at the op, with nothing touching
    memory in between, is written there directly (the JIT's kernels); any
    other into a new `memref.alloc`.

    The dense gradients `emb.lookup_grad` and `emb.bag_grad` (sum, mean, max;
    per_sample_weights, padding, grad_scale, scale_grad_by_freq, the `rows`
    window) become launches that run one after another: zeros over the gradient
    rows, with scale_grad_by_freq a count of each row's occurrences
    (`atomic_rmw addi`), then a scatter with `memref.atomic_rmw addf` per
    element (`atom.global.add` on NVIDIA). f16 / bf16 accumulate in an f32
    scratch table (`gpu.alloc`) rounded into the result by a last launch.
    The order of the additions is not fixed. With `deterministic` there
    are no atomics: the entries are keyed by their row in the window, sorted
    by a stable LSD radix sort (8 bits a pass; per-chunk digit counts, a
    barrier-free scan, in-order scatter; the passes are a host `scf.for`
    of launches), and a thread group per row sums its entries in input
    order, then scales: the host kernels' arithmetic, to the bit.

    `emb.lookup_sparse_grad` and `emb.bag_sparse_grad` count the live
    entries per chunk, scan the counts, read the total back to the host
    (`gpu.memcpy` into a `memref.alloca`: the results' size depends on the
    data) and write rows and scaled contributions at their place in input
    order; coalesced, they sort the entries by row as above, compact the
    runs of equal rows and sum each run in order. Their results are device
    buffers (`gpu.alloc`) freed at the end of the block.

    `emb.renorm` zeroes a flag per row (`gpu.alloc`), then one thread per
    position claims its row with an atomic or, computes the p-norm in f64
    and rescales the row when it is over max_norm: each distinct row once,
    in place when the result goes back into the weight's buffer (else into
    a copy made by a first launch).
    `emb.bag_psw_grad` is one thread per bag computing each entry's dot
    product with 16-byte vectors in a fixed order.

    `emb.multi_bag` is one `gpu.launch` for every table: each table owns a
    range of blocks laid out for its D and mode as its own bag would be
    (a sequence table: a thread group per entry), the block id selects the
    table's layout (`scf.index_switch`: tables of one layout share code)
    and the table's values (selects), rows are read where the tables are (one
    flat buffer when the tables are slices of it) and each table stores
    its columns of the result, with vectors that divide its D, its first
    column and the row. (`MultiBagToBags`, one `emb.bag` per table, stays
    as the fallback for dynamic columns.)

    Each op is one rewrite pattern, two for the dense gradients (atomic or
    `deterministic`), in lib/Conversion/EmbToGPU/Forward.cpp, MultiBag.cpp,
    DenseGrad.cpp, DeterministicGrad.cpp, SparseGrad.cpp;
    `populateEmbToGPUPatterns` adds them to another compiler's pattern set.
  }];
  let options = [
    Option<"threadsPerBlock", "threads-per-block", "int64_t", /*default=*/"0",
           "Threads per block, a power of two from 32 to 1024; 0: the GPU "
           "heuristic (lib/Conversion/EmbCommon/GPUConfig.h)">,
    Option<"maxThreadsPerRow", "max-threads-per-row", "int64_t",
           /*default=*/"0",
           "The most threads that share a row (or bag), a power of two up to "
           "32; 0: the GPU heuristic (a warp)">,
    Option<"entriesInFlight", "entries-in-flight", "int64_t",
           /*default=*/"0",
           "Bag entries whose rows a thread loads before accumulating them, "
           "1 to 16; 0: the GPU heuristic (4)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def ConvertEmbToLinalg : Pass<"convert-emb-to-linalg"> {
  let summary = "Lower emb's forward ops to linalg on tensors, for compilers that keep their own codegen";
  let description = [{
    The way back from emb to upstream dialects: after raising, and whatever
    a compiler did at emb level, the forward ops become `linalg.generic`s on
    tensors that stock `mlir-opt` (or IREE, or any linalg-based flow) lowers
    with its own pipeline.

    - `emb.lookup`: torch-mlir's form, one parallel generic over
      `indices.shape + [D]` whose body reads
      `tensor.extract %weight[index_cast(%x), linalg.index k]` (with
      `padding_mode = zero`, a select makes the padding row's elements 0).
      `raise-linalg-to-emb` raises it back.
    - `emb.bag` (sum, mean, sqrtn, max; 1-D indices with offsets, with or
      without `include_last_offset`, or 2-D indices; `per_sample_weights`,
      `padding_idx`, the `max_indices` result): one parallel generic over
      `[B, D]` whose body reduces the bag's entries with an `scf.for`
      (accumulating in f32 for f16 / bf16 tables, f64 for f64), then
      divides (mean, sqrtn) and truncates, as docs/semantics.md §3 and §6.1
      define it.
    - `emb.multi_bag`: one bag per table, inserted into its columns (the
      decomposition the CPU lowering uses).

    Gradients, renorm, fused steps and quantised tables have no linalg form
    here: the pass fails on them, naming the op.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def ConvertTosaToEmb : Pass<"convert-tosa-to-emb"> {
  let summary = "Raise tosa.gather embedding lookups to emb.lookup";
  let description = [{
    `tosa.gather %values, %indices` with one batch (`values : [1, K, C]`,
    `indices : [1, W]`, floating-point values) is an embedding lookup:
    `out[0, w, :] = values[0, indices[0, w], :]`. It becomes

    ```mlir
    %table = tensor.collapse_shape %values [[0, 1], [2]] : tensor<1xKxCxT> into tensor<KxCxT>
    %out = emb.lookup %table[%indices] : tensor<KxCxT>[tensor<1xWxI>] -> tensor<1xWxCxT>
    ```

    so that emb's kernels replace TOSA's gather. Anything else (several
    batches, integer values) is left unchanged.
  }];
  let dependentDialects = ["::mlir::emb::EmbDialect",
                           "::mlir::tensor::TensorDialect"];
}

def RaiseLinalgToEmb : Pass<"raise-linalg-to-emb"> {
  let summary = "Raise torch-mlir's linalg forms of embedding and embedding_bag to emb ops";
  let description = [{
    Finds the `linalg.generic` that torch-mlir's TorchToLinalg emits for
    `aten.embedding`: indices `[d0..dk-1]` in, output `[d0..dk-1, D]`, all
    parallel, and a body that reads `tensor.extract %weight[index_cast(%in),
    linalg.index k]` of a 2-D table defined outside (with or without its
    `cf.assert` bounds checks), and replaces it with `emb.lookup`. The bounds
    checks, when present, are kept: an `scf.for` over the indices asserts
    them with the same messages before the lookup. When the row is a pure
    integer function of the index instead (a clamp, ONNX Gather's wrap of
    negative indices, casts), that function is hoisted into an elementwise
    generic over the indices, and the lookup reads its rows.

    It also finds torch-mlir's `aten._embedding_bag` (sum mode): the 3-D
    generic over (bag, index, column) with indices and offsets in, a
    zero-filled `[B, D]` output, and a body that adds `%weight[%in, d2]` to
    the output where the offsets window selects it; that becomes
    `emb.bag sum %weight[%indices] offsets(%offsets)`; its loops may come in
    any order (IREE's dispatch-creation permutes them).

    A gather reduced over the sequence is a 2-D bag: the raised lookup of
    `[B, L]` ids summed over L into zeros (torch-mlir), or one reduction
    generic adding `%weight[index_cast(%ids[b, l]), d]` to its zero-filled
    output in any loop order (IREE's fused form), becomes
    `emb.bag sum %weight[%ids]`; an elementwise divide of that bag by its
    static L becomes `emb.bag mean`.

    A generic of any other shape is left unchanged.
  }];
  let dependentDialects = ["::mlir::emb::EmbDialect", "::mlir::scf::SCFDialect",
                           "::mlir::cf::ControlFlowDialect",
                           "::mlir::tensor::TensorDialect"];
}

def ConvertGPUToEmbRuntime : Pass<"convert-gpu-to-emb-runtime", "::mlir::ModuleOp"> {
  let summary = "Lower the host side of emb's GPU kernels to calls of the emb CUDA runtime shim";
  let description = [{
    After `emb-nvptx-pipeline` the host function holds `gpu.launch_func`,
    `gpu.alloc`, `gpu.dealloc`, `gpu.memcpy` and `memref.copy` (the
    sparse gradients), and each kernel is a `gpu.binary` (PTX or a cubin).
    This pass embeds every binary and kernel name as a constant LLVM global
    and replaces those ops with calls through `@__emb_gpu_runtime`, a table
    of four function pointers (launch, alloc, free, copy) that the runtime
    fills when it loads the kernel. Kernel parameters are passed as the
    NVVM lowering expects them: a memref as its descriptor's fields. Copies
    go through the driver in whichever direction the pointers say (unified
    addressing) and are complete on return. Async tokens, clusters, dynamic
    shared memory, host-shared allocations, non-contiguous copies, a kernel
    operand that is host memory and binaries with several objects are
    errors.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}
#endif // EMB_CONVERSION_PASSES_TD
