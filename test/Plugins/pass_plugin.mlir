// The stock mlir-opt runs our passes and the whole CPU pipeline through the
// pass plugin (with the dialect plugin to read the input).
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so --load-pass-plugin=%emb_libs/EmbPassPlugin.so %s --pass-pipeline="builtin.module(func.func(convert-emb-to-scf))" | FileCheck %s --check-prefix=SCF
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so --load-pass-plugin=%emb_libs/EmbPassPlugin.so %s --pass-pipeline="builtin.module(emb-cpu-pipeline)" | FileCheck %s --check-prefix=LLVM
// The way back to linalg, lowered by the stock passes in the same mlir-opt.
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so --load-pass-plugin=%emb_libs/EmbPassPlugin.so %s --pass-pipeline="builtin.module(convert-emb-to-linalg, one-shot-bufferize, convert-linalg-to-loops, convert-scf-to-cf, expand-strided-metadata, lower-affine, convert-to-llvm, reconcile-unrealized-casts)" | FileCheck %s --check-prefix=BACK

// SCF-LABEL: func @bag_sum
// SCF-NOT: emb.bag
// SCF: vector.transfer_read {{.*}} : tensor<?x64xf32>, vector<64xf32>

// BACK-LABEL: llvm.func @bag_sum
// BACK-NOT: emb.
// BACK: llvm.func @_mlir_ciface_bag_sum

// LLVM-LABEL: llvm.func @bag_sum
// LLVM: llvm.intr.prefetch
// LLVM: llvm.load %{{.*}} : !llvm.ptr -> vector<64xf32>
// LLVM: llvm.func @_mlir_ciface_bag_sum
func.func @bag_sum(%w: memref<?x64xf32>, %idx: memref<?xi64>, %off: memref<?xi64>, %out: memref<?x64xf32>)
    attributes {llvm.emit_c_interface} {
  %tw = bufferization.to_tensor %w restrict : memref<?x64xf32> to tensor<?x64xf32>
  %ti = bufferization.to_tensor %idx restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %off restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.bag sum %tw[%ti] offsets(%to : tensor<?xi64>) : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x64xf32>, memref<?x64xf32>) -> ()
  return
}
