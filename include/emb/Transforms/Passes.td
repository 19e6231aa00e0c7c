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
    variable, and inserts at the top of the body a `memref.prefetch` of
    each cache line of the same columns of the row `distance` indices
    ahead (clamped to the last index, so it never reads out of bounds). The
    offsets of a bag are absolute positions in the index buffer, so the
    prefetch runs ahead across bag boundaries too.
  }];
  let options = [
    Option<"distance", "distance", "int64_t", /*default=*/"16",
           "How many indices ahead to prefetch">,
    Option<"lineBytes", "line-bytes", "int64_t", /*default=*/"64",
           "Cache line size in bytes">,
    Option<"bytesAhead", "bytes-ahead", "int64_t", /*default=*/"0",
           "If set, raise the distance so that this many bytes of rows are "
           "in flight (at most 64 indices)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

#endif // EMB_TRANSFORMS_PASSES_TD
