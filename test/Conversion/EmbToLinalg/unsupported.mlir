// convert-emb-to-linalg has forms for the forward ops of float tables
// only: anything else is an error that names the op (not a legalisation
// failure later in someone else's pipeline).
// RUN: emb-opt %s -split-input-file -convert-emb-to-linalg -verify-diagnostics

func.func @renorm(%w: tensor<10x4xf32>, %ids: tensor<?xi64>) -> tensor<10x4xf32> {
  // expected-error @+1 {{convert-emb-to-linalg: 'emb.renorm' has no linalg form (forward lookups and bags of float tables only)}}
  %0 = emb.renorm %w[%ids] {max_norm = 1.0 : f64} : tensor<10x4xf32>[tensor<?xi64>] -> tensor<10x4xf32>
  return %0 : tensor<10x4xf32>
}

// -----

func.func @quantized(%w: tensor<10x136xi8>, %ids: tensor<?xi64>, %offs: tensor<?xi64>) -> tensor<?x128xf32> {
  // expected-error @+1 {{convert-emb-to-linalg: 'emb.bag' has no linalg form}}
  %0 = emb.bag sum %w[%ids] offsets(%offs : tensor<?xi64>) {quantized = #emb.quantized<int8>}
      : tensor<10x136xi8>[tensor<?xi64>] -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}
