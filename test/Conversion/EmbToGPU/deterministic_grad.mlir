// convert-emb-to-gpu, DeterministicGrad.cpp: a stable radix sort by row, then ordered sums.
// RUN: emb-opt %s --convert-emb-to-gpu --split-input-file --verify-diagnostics | FileCheck %s

// deterministic: no atomics. Keys (the row in the window, or a sentinel),
// a stable radix sort whose passes (8 bits of key each) are a host loop of
// launches (histogram, the scan's three, scatter), then a thread group per
// row that finds its entries by binary search and sums them in order.
// CHECK-LABEL: func.func @lookup_grad_deterministic
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.alloc
// CHECK: gpu.launch
// CHECK: arith.select
// CHECK: gpu.terminator
// CHECK: scf.for
// CHECK-COUNT-5: gpu.launch
// CHECK: scf.yield
// CHECK: gpu.launch
// CHECK: scf.while
// CHECK: vector.load
// CHECK: arith.addf
// CHECK: vector.store %{{.*}} : memref<1000x64xf32>, vector<4xf32>
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.dealloc
// CHECK: return
func.func @lookup_grad_deterministic(%g: tensor<?x64xf32>, %x: tensor<?xi64>) -> tensor<1000x64xf32> {
  %r = emb.lookup_grad %g[%x] {num_embeddings = 1000 : i64, padding_idx = 0 : i64, deterministic} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
  return %r : tensor<1000x64xf32>
}
