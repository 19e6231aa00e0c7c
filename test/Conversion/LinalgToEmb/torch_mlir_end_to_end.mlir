// From torch-mlir's linalg form of aten.embedding to machine-level IR:
// raise to emb.lookup, then the CPU pipeline (whole-row loads, prefetch).
// RUN: emb-opt %s -raise-linalg-to-emb -emb-cpu-pipeline | FileCheck %s

// CHECK-LABEL: llvm.func @embedding
// CHECK-NOT: linalg
// CHECK: llvm.intr.prefetch
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> vector<512xf32>
#map = affine_map<(d0, d1, d2) -> (d0, d1)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @embedding(%arg0: tensor<1x12xi64>, %cst_40: tensor<30522x768xf32>) -> tensor<1x12x768xf32> {
  %c30522 = arith.constant 30522 : index
  %c0_i64 = arith.constant 0 : i64
  %7 = tensor.empty() : tensor<1x12x768xf32>
  %8 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<1x12xi64>) outs(%7 : tensor<1x12x768xf32>) {
  ^bb0(%in: i64, %out: f32):
    %212 = arith.index_cast %in : i64 to index
    %213 = linalg.index 2 : index
    %214 = arith.cmpi slt, %212, %c30522 : index
    cf.assert %214, "index must be smaller than dim size"
    %215 = arith.cmpi sge, %in, %c0_i64 : i64
    cf.assert %215, "index must be larger or equal to 0"
    %extracted = tensor.extract %cst_40[%212, %213] : tensor<30522x768xf32>
    linalg.yield %extracted : f32
  } -> tensor<1x12x768xf32>
  return %8 : tensor<1x12x768xf32>
}
