//===- Passes.td - emb conversion passes -------------------*- tablegen -*-===//

#ifndef EMB_CONVERSION_PASSES_TD
#define EMB_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertEmbToSCF : Pass<"convert-emb-to-scf"> {
  let summary = "Lower the forward emb ops to scf loops over vectors of whole rows";
  let description = [{
    Lowers `emb.lookup`, `emb.bag` and `emb.renorm` to `scf.for` loops on
    tensors whose bodies move whole rows (or D-blocks of rows: 2 KiB of
    loop-carried state per block, see `CPUConfig.h`) with `vector.transfer_read` / `vector.transfer_write`:
    D is static in a specialised kernel, so a row of accumulators stays in
    registers and there are no per-element gathers. f16 / bf16 accumulate in
    f32; f64 in f64. The result is ready for one-shot bufferisation (the
    output `tensor.empty` is a candidate for empty-tensor elimination, so a
    kernel writes straight into its destination).

    The gradient ops are not lowered yet; the pass reports them as errors.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // EMB_CONVERSION_PASSES_TD
