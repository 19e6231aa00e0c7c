// A small model's embedding layer in the emb dialect: a token lookup with a
// zeroed padding row, a pooled (bag) lookup with per-sample weights, the
// max_norm renormalisation, and a gradient.
func.func @forward(%table: tensor<1000x64xf32>, %tokens: tensor<4x8xi64>,
                   %ids: tensor<?xi64>, %offsets: tensor<?xi64>, %psw: tensor<?xf32>)
    -> (tensor<4x8x64xf32>, tensor<?x64xf32>) {
  %renormed = emb.renorm %table[%tokens] {max_norm = 1.0 : f64}
      : tensor<1000x64xf32>[tensor<4x8xi64>] -> tensor<1000x64xf32>
  %tok = emb.lookup %renormed[%tokens] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<1000x64xf32>[tensor<4x8xi64>] -> tensor<4x8x64xf32>
  %bags = emb.bag sum %table[%ids] offsets(%offsets : tensor<?xi64>) per_sample_weights(%psw : tensor<?xf32>)
      : tensor<1000x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
  return %tok, %bags : tensor<4x8x64xf32>, tensor<?x64xf32>
}

func.func @backward(%grad: tensor<4x8x64xf32>, %tokens: tensor<4x8xi64>) -> tensor<1000x64xf32> {
  %gw = emb.lookup_grad %grad[%tokens] {num_embeddings = 1000 : i64, padding_idx = -1 : i64, scale_grad_by_freq}
      : tensor<4x8x64xf32>[tensor<4x8xi64>] -> tensor<1000x64xf32>
  return %gw : tensor<1000x64xf32>
}
