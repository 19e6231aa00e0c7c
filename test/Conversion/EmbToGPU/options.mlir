// convert-emb-to-gpu options pin the launch shape (GPUConfig.h): threads
// per block and the most threads that share a row.
// RUN: emb-opt %s --convert-emb-to-gpu | FileCheck %s --check-prefix=DEFAULT
// RUN: emb-opt %s --convert-emb-to-gpu="threads-per-block=128 max-threads-per-row=8" | FileCheck %s --check-prefix=PINNED
// RUN: not emb-opt %s --convert-emb-to-gpu="threads-per-block=100" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not emb-opt %s --convert-emb-to-gpu="max-threads-per-row=64" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not emb-opt %s --convert-emb-to-gpu="entries-in-flight=17" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: emb-opt %s --convert-emb-to-gpu="entries-in-flight=1" | FileCheck %s --check-prefix=ONE
// RUN: emb-opt %s --convert-emb-to-gpu="entries-in-flight=2" | FileCheck %s --check-prefix=TWO

// D = 128 f32 in float4s: by default 32 threads per row, 8 rows per
// 256-thread block; pinned, 8 threads per row (each covering 4 float4s of
// the row in turn), 16 rows per 128-thread block.
// DEFAULT-LABEL: func.func @lookup
// DEFAULT: %[[ROWS:.*]] = arith.constant 8 : index
// DEFAULT: arith.ceildivui %{{.*}}, %[[ROWS]]
// DEFAULT: %[[THREADS:.*]] = arith.constant 256 : index
// DEFAULT: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %[[THREADS]],
// DEFAULT: %[[TPR:.*]] = arith.constant 32 : index
// DEFAULT: arith.divui %{{.*}}, %[[TPR]]
// DEFAULT: %[[STEP:.*]] = arith.constant 128 : index
// DEFAULT: scf.for {{.*}} step %[[STEP]]
// PINNED-LABEL: func.func @lookup
// PINNED: %[[ROWS:.*]] = arith.constant 16 : index
// PINNED: arith.ceildivui %{{.*}}, %[[ROWS]]
// PINNED: %[[THREADS:.*]] = arith.constant 128 : index
// PINNED: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %[[THREADS]],
// PINNED: %[[TPR:.*]] = arith.constant 8 : index
// PINNED: arith.divui %{{.*}}, %[[TPR]]
// PINNED: arith.remui %{{.*}}, %[[TPR]]
// PINNED: %[[STEP:.*]] = arith.constant 32 : index
// PINNED: scf.for {{.*}} step %[[STEP]]
// PINNED: vector.load {{.*}} : memref<1000x128xf32>, vector<4xf32>
// BAD: threads-per-block must be a power of two in [32, 1024], max-threads-per-row one in [1, 32] and entries-in-flight in [1, 16]
func.func @lookup(%w: memref<1000x128xf32>, %x: memref<?xi64>, %out: memref<?x128xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<1000x128xf32> to tensor<1000x128xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.lookup %tw[%tx] : tensor<1000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x128xf32>, memref<?x128xf32>) -> ()
  return
}

// A bag reads entries-in-flight entries' rows before accumulating them: 1
// is one loop, one entry at a time; 2 a loop of pairs, then the rest.
// ONE-LABEL: func.func @bag
// ONE: scf.for {{.*}} step %c1{{.*}} iter_args
// ONE-COUNT-1: vector.load {{.*}} : memref<1000x32xf32>, vector<4xf32>
// ONE-NOT: scf.for {{.*}} iter_args
// TWO-LABEL: func.func @bag
// TWO: scf.for {{.*}} step %c2{{.*}} iter_args
// TWO-COUNT-2: vector.load {{.*}} : memref<1000x32xf32>, vector<4xf32>
// TWO: scf.for {{.*}} step %c1{{.*}} iter_args
// TWO-COUNT-1: vector.load {{.*}} : memref<1000x32xf32>, vector<4xf32>
func.func @bag(%w: tensor<1000x32xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> tensor<?x32xf32> {
  %r = emb.bag sum %w[%x] offsets(%o : tensor<?xi64>) : tensor<1000x32xf32>[tensor<?xi64>] -> tensor<?x32xf32>
  return %r : tensor<?x32xf32>
}
