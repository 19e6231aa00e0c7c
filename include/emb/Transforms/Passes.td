//===- Passes.td - emb transformation passes ---------------*- tablegen -*-===//

#ifndef EMB_TRANSFORMS_PASSES_TD
#define EMB_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def EmbPrefetchRows : Pass<"emb-prefetch-rows"> {
  let summary = "Prefetch the table rows of gather loops a few indices ahead";
  let description = [{
    Embedding kernels are bound by the latency of random row reads. On
    bufferised code, this pass finds every `scf.for` whose body reads a row
    of a 2-D table with `vector.transfer_read %table[%row, %col]`, where
    `%row` is loaded from a 1-D index buffer at the loop's induction
    variable and `%col` is a constant or defined outside the loop (the
    D-block loop of a long row around a bag's index loop), and inserts at
    the top of the body a `memref.prefetch` of each cache line of the same
    columns of the row `distance` indices ahead (clamped to the last index,
    so it never reads out of bounds). Where `%col` is (a constant plus) the
    induction variable of a D-block loop inside the loop, with constant
    bounds, a loop of prefetches covers the columns that loop reads. The
    offsets of a bag are absolute positions in the index buffer, so the
    prefetch runs ahead across bag boundaries too.
  }];
  let options = [
    Option<"distance", "distance", "int64_t", /*default=*/"0",
           "How many indices ahead to prefetch (at least); 0: the CPU "
           "heuristic (lib/Conversion/EmbCommon/CPUConfig.h)">,
    Option<"lineBytes", "line-bytes", "int64_t", /*default=*/"0",
           "Cache line size in bytes; 0: the CPU heuristic">,
    Option<"bytesAhead", "bytes-ahead", "int64_t", /*default=*/"0",
           "If set, raise the distance so that this many bytes of rows are "
           "in flight (at most 64 indices)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def EmbForwardAllocsToCopyTargets
    : Pass<"emb-forward-allocs-to-copy-targets", "::mlir::func::FuncOp"> {
  let summary = "Compute results in their destination instead of a scratch "
                "buffer copied there";
  let description = [{
    A result whose size only the kernel knows (the rows and values of a
    coalesced sparse gradient) is built in a `memref.alloc` and copied at
    the end into a view of the caller's buffer (`memref.reinterpret_cast`
    of a function argument with the same, identity-layout type). Empty
    tensor elimination cannot see that the two are the same size; after
    bufferisation and canonicalisation both are sized by the same value.
    This pass then uses the view itself for the allocation, moved up to
    where the allocation was, and drops the copy, when:
    - the allocation and the copy are in the function's body, the copy
      after the allocation, and the copy's source is the allocation itself;
    - the target is a `memref.reinterpret_cast` (a pure view) whose
      operands are defined before the allocation, of the allocation's exact
      type;
    - the function argument under the view has no other use (no other read
      or write of the caller's buffer can be reordered by the rewrite).
    Run before buffer deallocation. The scratch buffer's page faults and
    the copy go away (bag sum coalesced gradient, V = 1M, D = 128,
    B = 16384, L = 32: see docs/performance.md).
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def EmbEmulateGPUOnHost : Pass<"emb-emulate-gpu-on-host", "::mlir::ModuleOp"> {
  let summary = "Run outlined GPU kernels as host loops over grid x block";
  let description = [{
    For verification without a GPU: every `gpu.launch_func` becomes a loop
    nest over the grid (z, y, x) and the block (z, y, x) around a copy of
    its `gpu.func` body, in which `gpu.block_id`, `gpu.thread_id`,
    `gpu.block_dim` and `gpu.grid_dim` are the loop variables and the launch
    sizes; the `gpu.module`s are then erased and the module lowers like any
    host code. Threads run one after another, so a kernel that synchronises
    or exchanges values between threads (`gpu.barrier`, shuffles, subgroup
    ops, shared memory) cannot be emulated this way: the pass reports it
    instead of running it wrongly. The emb kernels use none of those.
    `gpu.alloc` becomes `memref.alloc`, `gpu.memcpy` `memref.copy`, and
    `gpu.dealloc` is dropped (run the buffer deallocation pipeline
    afterwards, as emb-gpu-emulation-pipeline does).

    With `trace-memory`, every load, store and atomic of global memory in an
    emulated kernel first calls the memory-trace table `__emb_memory_trace`
    (include/emb/Runtime/MemoryTraceABI.h) with its address and size, each
    launch being announced with its kernel's name, its sites and its sizes:
    the runtime's collector groups the accesses of each warp into memory
    transactions (docs/gpu.md, "Memory transactions without a GPU").
  }];
  let options = [
    Option<"traceMemory", "trace-memory", "bool", /*default=*/"false",
           "Report every global memory access to the memory-trace table">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def EmbCheckNVPTXTarget : Pass<"emb-check-nvptx-target", "::mlir::ModuleOp"> {
  let summary = "Reject an unknown NVIDIA chip or a chip / PTX version mismatch";
  let description = [{
    The first pass of `emb-nvptx-pipeline`: LLVM's NVPTX backend aborts the
    process on a PTX version too old for the chip ("PTX version 6.0 does
    not support target 'sm_90'"); this pass turns that, and a chip it does
    not know, into an error with the accepted values. `ptx` = 0 picks the
    default for the chip (see docs/gpu.md).
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90\"",
           "The NVIDIA chip: sm_70, sm_72, sm_75, sm_80, sm_86, sm_87, sm_89, "
           "sm_90, sm_90a, sm_100, sm_100a, sm_120, sm_120a (CUDA 13's ptxas "
           "starts at sm_75)">,
    Option<"ptx", "ptx", "unsigned", /*default=*/"0",
           "PTX ISA version times ten (80 is PTX 8.0); 0: the chip's default">,
  ];
}

def EmbSetKernelOccupancy
    : Pass<"emb-set-kernel-occupancy", "::mlir::ModuleOp"> {
  let summary = "State each outlined GPU kernel's occupancy floor for ptxas "
                "(nvvm.minctasm)";
  let description = [{
    Sets `nvvm.minctasm` (PTX `.minnctapersm`) on every outlined kernel
    whose block size is known (`known_block_size`, which becomes PTX
    `.maxntid`): the blocks per SM that keep `min-resident-threads`
    threads resident, ceil(min-resident-threads / block size), at most 16
    (what an SM of sm_75 / sm_86 / sm_89 / sm_120 holds). Without it,
    ptxas reads `.maxntid 256` as a wish for full occupancy and holds a
    kernel to 32 registers, spilling the rows a bag keeps in flight; with
    it, ptxas may use up to 65536 / (blocks x block size) registers and
    spills nothing the kernels hold (docs/gpu.md, "The occupancy floor").
    A kernel that already states `nvvm.minctasm` keeps it.
  }];
  let options = [
    Option<"minResidentThreads", "min-resident-threads", "int64_t",
           /*default=*/"1024",
           "Threads per SM the floor keeps resident (1024: half of sm_80's "
           "and sm_90's 2048, issue 20's 50% occupancy)">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::NVVM::NVVMDialect"];
}

#endif // EMB_TRANSFORMS_PASSES_TD
