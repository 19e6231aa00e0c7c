// Every verifier rule of the emb dialect, one case each; the message names
// the operand or attribute at fault.
// RUN: emb-opt %s -split-input-file -verify-diagnostics

// lookup: the weight must be 2-D
func.func @f(%w: tensor<10xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<10xf32>'}}
  %0 = emb.lookup %w[%i] : tensor<10xf32>[tensor<3xi64>] -> tensor<3x10xf32>
  return
}

// -----

// lookup: the weight must be floating point
func.func @f(%w: tensor<10x4xi32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<10x4xi32>'}}
  %0 = emb.lookup %w[%i] : tensor<10x4xi32>[tensor<3xi64>] -> tensor<3x4xi32>
  return
}

// -----

// lookup: indices must be i32 or i64
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi16>) {
  // expected-error @+1 {{'emb.lookup' op 'indices' must be a tensor of i32 or i64, got 'tensor<3xi16>'}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi16>] -> tensor<3x4xf32>
  return
}

// -----

// lookup: indices must not be floating point
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xf32>) {
  // expected-error @+1 {{'emb.lookup' op 'indices' must be a tensor of i32 or i64, got 'tensor<3xf32>'}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xf32>] -> tensor<3x4xf32>
  return
}

// -----

// lookup: the result must be floating point
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'result' must be a tensor of f32, f64, f16 or bf16, got 'tensor<3x4xi64>'}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xi64>
  return
}

// -----

// lookup: the result has the weight's element type
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'result' element type 'f16' does not match 'weight' element type 'f32'}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf16>
  return
}

// -----

// lookup: the result has rank(indices) + 1
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3x2xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'result' type 'tensor<6x4xf32>' must have the shape of 'indices' ('tensor<3x2xi64>') followed by embedding_dim 4}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3x2xi64>] -> tensor<6x4xf32>
  return
}

// -----

// lookup: the result's leading dims are the indices' dims
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'result' type 'tensor<5x4xf32>' must have the shape of 'indices' ('tensor<3xi64>') followed by embedding_dim 4}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi64>] -> tensor<5x4xf32>
  return
}

// -----

// lookup: the result's last dim is D
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'result' type 'tensor<3x5xf32>' must have the shape of 'indices' ('tensor<3xi64>') followed by embedding_dim 4}}
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x5xf32>
  return
}

// -----

// lookup: padding_idx must lie in [-V, V)
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'padding_idx' 10 is out of range [-10, 10)}}
  %0 = emb.lookup %w[%i] {padding_idx = 10 : i64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  return
}

// -----

// lookup: padding_idx must lie in [-V, V) (negative side)
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup' op 'padding_idx' -11 is out of range [-10, 10)}}
  %0 = emb.lookup %w[%i] {padding_idx = -11 : i64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  return
}

// -----

// bag: indices must be 1-D or 2-D
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3x4xi64>) {
  // expected-error @+1 {{'emb.bag' op 'indices' of a bag must be 1-D (with 'offsets') or 2-D, got 'tensor<2x3x4xi64>'}}
  %0 = emb.bag sum %w[%i] : tensor<10x4xf32>[tensor<2x3x4xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: indices must be i32 or i64
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi8>) {
  // expected-error @+1 {{'emb.bag' op 'indices' must be a tensor of i32 or i64, got 'tensor<2x3xi8>'}}
  %0 = emb.bag sum %w[%i] : tensor<10x4xf32>[tensor<2x3xi8>] -> tensor<2x4xf32>
  return
}

// -----

// bag: the weight must be 2-D
func.func @f(%w: tensor<10x4x2xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<10x4x2xf32>'}}
  %0 = emb.bag sum %w[%i] : tensor<10x4x2xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: 1-D indices need offsets
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>) {
  // expected-error @+1 {{'emb.bag' op 1-D 'indices' need an 'offsets' operand}}
  %0 = emb.bag sum %w[%i] : tensor<10x4xf32>[tensor<6xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: 2-D indices take no offsets
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>, %o: tensor<2xi64>) {
  // expected-error @+1 {{'emb.bag' op 'offsets' must be absent when 'indices' is 2-D (every row is a bag)}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<2xi64>) : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: offsets must be a 1-D integer tensor
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>, %o: tensor<2x1xi64>) {
  // expected-error @+1 {{'emb.bag' op 'offsets' must be a 1-D tensor of i32 or i64, got 'tensor<2x1xi64>'}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<2x1xi64>) : tensor<10x4xf32>[tensor<6xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: offsets must be i32 or i64
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>, %o: tensor<2xf32>) {
  // expected-error @+1 {{'emb.bag' op 'offsets' must be a 1-D tensor of i32 or i64, got 'tensor<2xf32>'}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<2xf32>) : tensor<10x4xf32>[tensor<6xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: include_last_offset needs one offset at least
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>, %o: tensor<0xi64>) {
  // expected-error @+1 {{'emb.bag' op 'include_last_offset' needs at least one entry in 'offsets'}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<0xi64>) {include_last_offset} : tensor<10x4xf32>[tensor<6xi64>] -> tensor<0x4xf32>
  return
}

// -----

// bag: B = len(offsets)
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>, %o: tensor<3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' dimension 0 (2) does not match the number of bags (3)}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<3xi64>) : tensor<10x4xf32>[tensor<6xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: B = len(offsets) - 1 with include_last_offset
func.func @f(%w: tensor<10x4xf32>, %i: tensor<6xi64>, %o: tensor<3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' dimension 0 (3) does not match the number of bags (2)}}
  %0 = emb.bag sum %w[%i] offsets(%o : tensor<3xi64>) {include_last_offset} : tensor<10x4xf32>[tensor<6xi64>] -> tensor<3x4xf32>
  return
}

// -----

// bag: B = rows of 2-D indices
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' dimension 0 (3) does not match the number of bags (2)}}
  %0 = emb.bag mean %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<3x4xf32>
  return
}

// -----

// bag: the output's second dim is D
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' dimension 1 (8) does not match embedding_dim of 'weight' (4)}}
  %0 = emb.bag mean %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x8xf32>
  return
}

// -----

// bag: the output must be 2-D
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<2x3x4xf32>'}}
  %0 = emb.bag mean %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

// bag: the output has the weight's element type
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' element type 'f64' does not match 'weight' element type 'f32'}}
  %0 = emb.bag mean %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf64>
  return
}

// -----

// bag: per_sample_weights weigh sum, mean and sqrtn, not max
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>, %p: tensor<2x3xf32>) {
  // expected-error @+1 {{'emb.bag' op 'per_sample_weights' is not allowed with mode 'max'}}
  %0 = emb.bag max %w[%i] per_sample_weights(%p : tensor<2x3xf32>) : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: per_sample_weights has the shape of indices
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>, %p: tensor<3x2xf32>) {
  // expected-error @+1 {{'emb.bag' op 'per_sample_weights' type 'tensor<3x2xf32>' must have the shape of 'indices' ('tensor<2x3xi64>')}}
  %0 = emb.bag sum %w[%i] per_sample_weights(%p : tensor<3x2xf32>) : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: per_sample_weights has the weight's element type
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>, %p: tensor<2x3xf64>) {
  // expected-error @+1 {{'emb.bag' op 'per_sample_weights' element type 'f64' does not match 'weight' element type 'f32'}}
  %0 = emb.bag sum %w[%i] per_sample_weights(%p : tensor<2x3xf64>) : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: per_sample_weights must be floating point
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>, %p: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'per_sample_weights' must be a tensor of f32, f64, f16 or bf16, got 'tensor<2x3xi64>'}}
  %0 = emb.bag sum %w[%i] per_sample_weights(%p : tensor<2x3xi64>) : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag: max_indices only with max
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'max_indices' result is only allowed with mode 'max', got 'sum'}}
  %0, %1 = emb.bag sum %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>, tensor<2x4xi64>
  return
}

// -----

// bag: max_indices are i64 shaped like the output
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'max_indices' must be a tensor of i64 with the shape of 'output' ('tensor<2x4xf32>'), got 'tensor<2x4xi32>'}}
  %0, %1 = emb.bag max %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>, tensor<2x4xi32>
  return
}

// -----

// bag: padding_idx must lie in [-V, V)
func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'padding_idx' 12 is out of range [-10, 10)}}
  %0 = emb.bag sum %w[%i] {padding_idx = 12 : i64} : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// renorm: the weight must be a 2-D float tensor
func.func @f(%w: tensor<10xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.renorm' op 'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<10xf32>'}}
  %0 = emb.renorm %w[%i] {max_norm = 1.0 : f64} : tensor<10xf32>[tensor<3xi64>] -> tensor<10xf32>
  return
}

// -----

// renorm: indices must be i32 or i64
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xui64>) {
  // expected-error @+1 {{'emb.renorm' op 'indices' must be a tensor of i32 or i64, got 'tensor<3xui64>'}}
  %0 = emb.renorm %w[%i] {max_norm = 1.0 : f64} : tensor<10x4xf32>[tensor<3xui64>] -> tensor<10x4xf32>
  return
}

// -----

// renorm: the result is the weight (destination style)
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.renorm' op result type 'tensor<?x4xf32>' must be the type of 'weight' ('tensor<10x4xf32>')}}
  %0 = emb.renorm %w[%i] {max_norm = 1.0 : f64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<?x4xf32>
  return
}

// -----

// renorm: max_norm must not be NaN
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.renorm' op 'max_norm' must not be NaN}}
  %0 = emb.renorm %w[%i] {max_norm = 0x7FF8000000000000 : f64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// renorm: norm_type must not be NaN
func.func @f(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.renorm' op 'norm_type' must not be NaN}}
  %0 = emb.renorm %w[%i] {max_norm = 1.0 : f64, norm_type = 0x7FF8000000000000 : f64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// lookup_grad: num_embeddings is non-negative
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'num_embeddings' must be non-negative, got -1}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = -1 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?x4xf32>
  return
}

// -----

// lookup_grad: grad_scale is finite
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'grad_scale' must be finite, got inf}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64, grad_scale = 0x7FF0000000000000 : f64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// lookup_grad: grad must be floating point
func.func @f(%g: tensor<3x4xi32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'grad' must be a tensor of f32, f64, f16 or bf16, got 'tensor<3x4xi32>'}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xi32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// lookup_grad: grad has rank >= 1
func.func @f(%g: tensor<f32>, %i: tensor<i64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'grad' must have rank >= 1, got 'tensor<f32>'}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<f32>[tensor<i64>] -> tensor<10x1xf32>
  return
}

// -----

// lookup_grad: grad is shaped like the lookup's result
func.func @f(%g: tensor<3x4xf32>, %i: tensor<2xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'grad' type 'tensor<3x4xf32>' must have the shape of 'indices' ('tensor<2xi64>') followed by embedding_dim 4}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// lookup_grad: the result has num_embeddings rows
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'result' dimension 0 (11) does not match 'num_embeddings' (10)}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<11x4xf32>
  return
}

// -----

// lookup_grad: the result has D columns
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'result' dimension 1 (5) does not match embedding_dim of 'grad' (4)}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<10x5xf32>
  return
}

// -----

// lookup_grad: the result has the grad's element type
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'result' element type 'bf16' does not match 'grad' element type 'f32'}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<10x4xbf16>
  return
}

// -----

// lookup_grad: the result is 2-D
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'result' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<40xf32>'}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<40xf32>
  return
}

// -----

// lookup_grad: padding_idx is checked against num_embeddings
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_grad' op 'padding_idx' -20 is out of range [-10, 10)}}
  %0 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64, padding_idx = -20 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: max needs max_indices
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op mode 'max' needs the 'max_indices' operand}}
  %0 = emb.bag_grad max %g[%i] {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: scale_grad_by_freq is not allowed with max
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>, %m: tensor<2x4xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'scale_grad_by_freq' is not allowed with mode 'max'}}
  %0 = emb.bag_grad max %g[%i] max_indices(%m : tensor<2x4xi64>) {num_embeddings = 10 : i64, scale_grad_by_freq} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: max_indices only with max
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>, %m: tensor<2x4xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'max_indices' operand is only allowed with mode 'max', got 'mean'}}
  %0 = emb.bag_grad mean %g[%i] max_indices(%m : tensor<2x4xi64>) {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: max_indices are shaped like grad
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>, %m: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'max_indices' must be a tensor of i64 with the shape of 'grad' ('tensor<2x4xf32>'), got 'tensor<2x3xi64>'}}
  %0 = emb.bag_grad max %g[%i] max_indices(%m : tensor<2x3xi64>) {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: per_sample_weights not with max
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>, %p: tensor<2x3xf32>, %m: tensor<2x4xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'per_sample_weights' is not allowed with mode 'max'}}
  %0 = emb.bag_grad max %g[%i] per_sample_weights(%p : tensor<2x3xf32>) max_indices(%m : tensor<2x4xi64>) {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: grad has one row per bag
func.func @f(%g: tensor<3x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'grad' dimension 0 (3) does not match the number of bags (2)}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: grad is 2-D
func.func @f(%g: tensor<2x3x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'grad' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<2x3x4xf32>'}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64} : tensor<2x3x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: the result has num_embeddings rows
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'result' dimension 0 (9) does not match 'num_embeddings' (10)}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<9x4xf32>
  return
}

// -----

// bag_grad: 1-D indices need offsets
func.func @f(%g: tensor<2x4xf32>, %i: tensor<6xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 1-D 'indices' need an 'offsets' operand}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<6xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: padding_idx is checked against num_embeddings
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'padding_idx' 10 is out of range [-10, 10)}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64, padding_idx = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_grad: num_embeddings is non-negative
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'num_embeddings' must be non-negative, got -3}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = -3 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<?x4xf32>
  return
}

// -----

// bag_grad: grad_scale is finite
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op 'grad_scale' must be finite, got nan}}
  %0 = emb.bag_grad sum %g[%i] {num_embeddings = 10 : i64, grad_scale = 0x7FF8000000000000 : f64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_psw_grad: grad and weight share the element type
func.func @f(%g: tensor<2x4xf16>, %w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'grad' element type 'f16' does not match 'weight' element type 'f32'}}
  %0 = emb.bag_psw_grad %g, %w[%i] : tensor<2x4xf16>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3xf32>
  return
}

// -----

// bag_psw_grad: grad's second dim is D
func.func @f(%g: tensor<2x5xf32>, %w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'grad' dimension 1 (5) does not match embedding_dim of 'weight' (4)}}
  %0 = emb.bag_psw_grad %g, %w[%i] : tensor<2x5xf32>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3xf32>
  return
}

// -----

// bag_psw_grad: the result has the shape of indices
func.func @f(%g: tensor<2x4xf32>, %w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'result' type 'tensor<6xf32>' must have the shape of 'indices' ('tensor<2x3xi64>')}}
  %0 = emb.bag_psw_grad %g, %w[%i] : tensor<2x4xf32>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<6xf32>
  return
}

// -----

// bag_psw_grad: the result has the weight's element type
func.func @f(%g: tensor<2x4xf32>, %w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'result' element type 'f64' does not match 'weight' element type 'f32'}}
  %0 = emb.bag_psw_grad %g, %w[%i] : tensor<2x4xf32>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3xf64>
  return
}

// -----

// bag_psw_grad: the weight is 2-D
func.func @f(%g: tensor<2x4xf32>, %w: tensor<4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got 'tensor<4xf32>'}}
  %0 = emb.bag_psw_grad %g, %w[%i] : tensor<2x4xf32>, tensor<4xf32>[tensor<2x3xi64>] -> tensor<2x3xf32>
  return
}

// -----

// bag_psw_grad: padding_idx must lie in [-V, V)
func.func @f(%g: tensor<2x4xf32>, %w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_psw_grad' op 'padding_idx' 99 is out of range [-10, 10)}}
  %0 = emb.bag_psw_grad %g, %w[%i] {padding_idx = 99 : i64} : tensor<2x4xf32>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3xf32>
  return
}

// -----

// lookup_sparse_grad: rows are 1-D i64
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'rows' must be a 1-D tensor of i64, got 'tensor<?xi32>'}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi32>, tensor<?x4xf32>
  return
}

// -----

// lookup_sparse_grad: values have D columns
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'values' dimension 1 (8) does not match embedding_dim of 'grad' (4)}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x8xf32>
  return
}

// -----

// lookup_sparse_grad: one value row per row index
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'values' dimension 0 (2) does not match 'rows' dimension 0 (3)}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<3xi64>, tensor<2x4xf32>
  return
}

// -----

// lookup_sparse_grad: values have the grad's element type
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'values' element type 'f16' does not match 'grad' element type 'f32'}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf16>
  return
}

// -----

// lookup_sparse_grad: grad is shaped like the lookup's result
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3x1xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'grad' type 'tensor<3x4xf32>' must have the shape of 'indices' ('tensor<3x1xi64>') followed by embedding_dim 4}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3x1xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return
}

// -----

// lookup_sparse_grad: padding_idx is checked against num_embeddings
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>) {
  // expected-error @+1 {{'emb.lookup_sparse_grad' op 'padding_idx' 10 is out of range [-10, 10)}}
  %0, %1 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64, padding_idx = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return
}

// -----

// bag_sparse_grad: no sparse gradient for max
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_sparse_grad' op sparse gradients are not supported with mode 'max'}}
  %0, %1 = emb.bag_sparse_grad max %g[%i] {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return
}

// -----

// bag_sparse_grad: grad has one row per bag
func.func @f(%g: tensor<2x4xf32>, %i: tensor<5xi64>, %o: tensor<3xi64>) {
  // expected-error @+1 {{'emb.bag_sparse_grad' op 'grad' dimension 0 (2) does not match the number of bags (3)}}
  %0, %1 = emb.bag_sparse_grad sum %g[%i] offsets(%o : tensor<3xi64>) {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<5xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return
}

// -----

// bag_sparse_grad: rows are 1-D i64
func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_sparse_grad' op 'rows' must be a 1-D tensor of i64, got 'tensor<?x1xi64>'}}
  %0, %1 = emb.bag_sparse_grad sum %g[%i] {num_embeddings = 10 : i64} : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<?x1xi64>, tensor<?x4xf32>
  return
}

// -----

// lookup_grad: a row window holds at most num_embeddings rows
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>, %a: index, %n: index) {
  // expected-error @+1 {{'emb.lookup_grad' op 'result' dimension 0 (11) exceeds 'num_embeddings' (10)}}
  %0 = emb.lookup_grad %g[%i] rows(%a, %n) {num_embeddings = 10 : i64} : tensor<3x4xf32>[tensor<3xi64>] -> tensor<11x4xf32>
  return
}

// -----

// lookup_grad: row_offset without row_count (generic form)
func.func @f(%g: tensor<3x4xf32>, %i: tensor<3xi64>, %a: index) {
  // expected-error @+1 {{'emb.lookup_grad' op 'row_offset' and 'row_count' go together}}
  %0 = "emb.lookup_grad"(%g, %i, %a) <{num_embeddings = 10 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<3x4xf32>, tensor<3xi64>, index) -> tensor<?x4xf32>
  return
}

// -----

// bag, quantised: the table is bytes
func.func @f(%w: tensor<10x12xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'weight' of a quantised bag must be a 2-D tensor of i8 (the packed rows), got 'tensor<10x12xf32>'}}
  %0 = emb.bag sum %w[%i] {quantized = #emb.quantized<int8>} : tensor<10x12xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag, quantised: int8 rows of D = 4 are D + 8 = 12 bytes
func.func @f(%w: tensor<10x13xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'weight' dimension 1 (bytes per row) (13) does not match int8 rows of D = 4 (12)}}
  %0 = emb.bag sum %w[%i] {quantized = #emb.quantized<int8>} : tensor<10x13xi8>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// bag, quantised: int4 rows of D = 5 are ceil(D/2) + 4 = 7 bytes
func.func @f(%w: tensor<10x8xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'weight' dimension 1 (bytes per row) (8) does not match int4 rows of D = 5 (7)}}
  %0 = emb.bag sum %w[%i] {quantized = #emb.quantized<int4>} : tensor<10x8xi8>[tensor<2x3xi64>] -> tensor<2x5xf32>
  return
}

// -----

// bag, quantised: the output is f32 or f16
func.func @f(%w: tensor<10x12xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'output' of a quantised bag must be a 2-D tensor of f32 or f16, got 'tensor<2x4xbf16>'}}
  %0 = emb.bag sum %w[%i] {quantized = #emb.quantized<int8>} : tensor<10x12xi8>[tensor<2x3xi64>] -> tensor<2x4xbf16>
  return
}

// -----

// bag, quantised: D must be static (it decides the row's bytes)
func.func @f(%w: tensor<10x12xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op a quantised bag needs a static embedding dimension (the output's dimension 1)}}
  %0 = emb.bag sum %w[%i] {quantized = #emb.quantized<int8>} : tensor<10x12xi8>[tensor<2x3xi64>] -> tensor<2x?xf32>
  return
}

// -----

// bag, quantised: per_sample_weights have the output's element type
func.func @f(%w: tensor<10x12xi8>, %i: tensor<2x3xi64>, %p: tensor<2x3xf32>) {
  // expected-error @+1 {{'emb.bag' op 'per_sample_weights' element type 'f32' does not match 'output' element type 'f16'}}
  %0 = emb.bag sum %w[%i] per_sample_weights(%p : tensor<2x3xf32>) {quantized = #emb.quantized<int8>} : tensor<10x12xi8>[tensor<2x3xi64>] -> tensor<2x4xf16>
  return
}

// -----

// bag, quantised: no max_indices (no gradient)
func.func @f(%w: tensor<10x12xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'max_indices' is not allowed with a quantised table (it has no gradient)}}
  %0, %1 = emb.bag max %w[%i] {quantized = #emb.quantized<int8>} : tensor<10x12xi8>[tensor<2x3xi64>] -> tensor<2x4xf32>, tensor<2x4xi64>
  return
}

// -----

// bag, quantised: padding_idx is a row of the table
func.func @f(%w: tensor<10x12xi8>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag' op 'padding_idx' 10 is out of range [-10, 10)}}
  %0 = emb.bag sum %w[%i] {padding_idx = 10 : i64, quantized = #emb.quantized<int8>} : tensor<10x12xi8>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

// multi_bag: one mode and one padding_idx per table
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op needs one mode and one padding_idx per table (2), got 1 and 2}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// multi_bag: the tables share one element type
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf16>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'table 1' element type 'f16' does not match 'table 0' element type 'f32'}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf16>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// multi_bag: the output has the sum of the tables' columns
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'output' dimension 1 (5) does not match the sum of the tables' columns (6)}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x5xf32>
  return
}

// -----

// multi_bag: T * B + 1 offsets
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<4xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'offsets' has 4 entries, not T * B + 1 for T = 2}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<4xi64>) {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// multi_bag: no per_sample_weights with a max table
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %p: tensor<?xf32>) {
  // expected-error @+1 {{'emb.multi_bag' op 'per_sample_weights' are not allowed when a table's mode is 'max'}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) per_sample_weights(%p : tensor<?xf32>) {modes = [#emb.mode<sum>, #emb.mode<max>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// multi_bag: padding rows are normalised: -1 or a row of the table
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'padding_idx' of table 1 (5) is not -1 or a row of the table}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, 5>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// multi_bag: per_sample_weights have the tables' element type
func.func @f(%t0: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %p: tensor<?xf16>) {
  // expected-error @+1 {{'emb.multi_bag' op 'per_sample_weights' element type 'f16' does not match 'table 0' element type 'f32'}}
  %0 = emb.multi_bag %t0[%i] offsets(%o : tensor<?xi64>) per_sample_weights(%p : tensor<?xf16>) {modes = [#emb.mode<sum>], padding_idx = array<i64: -1>} : (tensor<10x4xf32>)[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// multi_bag: B = (len(offsets) - 1) / T rows
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<7xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'output' dimension 0 (2) does not match the number of bags (3)}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<7xi64>) {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, -1>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<2x6xf32>
  return
}

// -----

// multi_bag: every table's D is static
func.func @f(%t0: tensor<10x?xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'table 0' needs a static embedding dimension}}
  %0 = emb.multi_bag %t0[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>], padding_idx = array<i64: -1>} : (tensor<10x?xf32>)[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// multi_bag: at least one table (generic form)
func.func @f(%i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op needs at least one table}}
  %0 = "emb.multi_bag"(%i, %o) <{modes = [], padding_idx = array<i64>, operandSegmentSizes = array<i32: 0, 1, 1, 0, 0, 0>}> : (tensor<?xi64>, tensor<?xi64>) -> tensor<?x0xf32>
  return
}

// -----

// multi_bag: bag_offset without bag_count (generic form)
func.func @f(%t0: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %a: index) {
  // expected-error @+1 {{'emb.multi_bag' op 'bag_offset' and 'bag_count' go together}}
  %0 = "emb.multi_bag"(%t0, %i, %o, %a) <{modes = [#emb.mode<sum>], padding_idx = array<i64: -1>, operandSegmentSizes = array<i32: 1, 1, 1, 0, 1, 0>}> : (tensor<10x4xf32>, tensor<?xi64>, tensor<?xi64>, index) -> tensor<?x4xf32>
  return
}

// -----

// bag_update: an unknown optimizer keyword
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{expected optimizer 'sgd', 'adagrad', 'rowwise_adagrad' or 'adam', got 'lamb'}}
  %0 = emb.bag_update lamb sum %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_update: the number of states follows the optimizer
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op optimizer 'adagrad' keeps 1 state tensor(s), got 0}}
  %0 = emb.bag_update adagrad sum %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_update: rowwise_adagrad keeps one f32 per row
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %h: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op the state of 'rowwise_adagrad' must be 'tensor<10xf32>', got 'tensor<10x4xf32>'}}
  %0:2 = emb.bag_update rowwise_adagrad sum %g[%i] weight(%w : tensor<10x4xf32>) states(%h : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>, tensor<10x4xf32>
  return
}

// -----

// bag_update: the state of an f16 table is f32
func.func @f(%g: tensor<?x4xf16>, %i: tensor<?x2xi64>, %w: tensor<10x4xf16>, %h: tensor<10x4xf16>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op the state of 'adagrad' must be 'tensor<10x4xf32>', got 'tensor<10x4xf16>'}}
  %0:2 = emb.bag_update adagrad sum %g[%i] weight(%w : tensor<10x4xf16>) states(%h : tensor<10x4xf16>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf16>[tensor<?x2xi64>] -> tensor<10x4xf16>, tensor<10x4xf16>
  return
}

// -----

// bag_update: step is adam's
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64, %t: i64) {
  // expected-error @+1 {{'emb.bag_update' op 'step' is an operand of 'adam' only}}
  %0 = emb.bag_update sgd sum %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) step(%t) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_update: betas in [0, 1)
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %m: tensor<10x4xf32>, %lr: f64, %t: i64) {
  // expected-error @+1 {{'emb.bag_update' op 'beta1' and 'beta2' must be in [0, 1), got 1.000000e+00}}
  %0:3 = emb.bag_update adam sum %g[%i] weight(%w : tensor<10x4xf32>) states(%m, %m : tensor<10x4xf32>, tensor<10x4xf32>) lr(%lr) step(%t) {num_embeddings = 10 : i64, beta2 = 1.0 : f64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>, tensor<10x4xf32>, tensor<10x4xf32>
  return
}

// -----

// bag_update: weight_decay and eps non-negative
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op 'weight_decay' and 'eps' must be non-negative}}
  %0 = emb.bag_update sgd sum %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64, weight_decay = -0.5 : f64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// bag_update: the weight has the table's rows without a window
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<9x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op 'weight' dimension 0 (9) does not match 'num_embeddings' (10)}}
  %0 = emb.bag_update sgd sum %g[%i] weight(%w : tensor<9x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<9x4xf32>
  return
}

// -----

// bag_update: the results are the weight's and the states' types
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op the results must have the types of 'weight' and the states}}
  %0 = emb.bag_update sgd sum %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<?x4xf32>
  return
}

// -----

// bag_update: max needs max_indices
func.func @f(%g: tensor<?x4xf32>, %i: tensor<?x2xi64>, %w: tensor<10x4xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.bag_update' op mode 'max' needs the 'max_indices' operand}}
  %0 = emb.bag_update sgd max %g[%i] weight(%w : tensor<10x4xf32>) lr(%lr) {num_embeddings = 10 : i64} : tensor<?x4xf32>[tensor<?x2xi64>] -> tensor<10x4xf32>
  return
}

// -----

// multi_bag_update: a max table needs the forward's max_indices
func.func @f(%g: tensor<?x8xf32>, %w: tensor<80xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op table 0 is 'max', which has no many-table fused step}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<max>], padding_idx = array<i64: -1>} : tensor<?x8xf32>, tensor<80xf32>[tensor<?xi64>] -> tensor<80xf32>
  return
}

// -----

// multi_bag_update: the flat weights hold the tables
func.func @f(%g: tensor<?x8xf32>, %w: tensor<81xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op 'weights' dimension 0 (81) does not match the tables' elements (80)}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<sum>], padding_idx = array<i64: -1>} : tensor<?x8xf32>, tensor<81xf32>[tensor<?xi64>] -> tensor<81xf32>
  return
}

// -----

// multi_bag_update: row_parts divides the window of rows()
func.func @f(%g: tensor<?x8xf32>, %w: tensor<80xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op 'row_parts' divides the rows of 'rows()', which is absent}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<sum>], padding_idx = array<i64: -1>, row_parts = 4 : i64} : tensor<?x8xf32>, tensor<80xf32>[tensor<?xi64>] -> tensor<80xf32>
  return
}

// -----

// multi_bag_update: at least one part
func.func @f(%g: tensor<?x8xf32>, %w: tensor<80xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %a: index, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op 'row_parts' must be at least 1, and times the largest table's rows fit in 64 bits, got 0}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) rows(%a, %a) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<sum>], padding_idx = array<i64: -1>, row_parts = 0 : i64} : tensor<?x8xf32>, tensor<80xf32>[tensor<?xi64>] -> tensor<80xf32>
  return
}

// -----

// multi_bag_update: the parts' row arithmetic must fit in 64 bits
func.func @f(%g: tensor<?x1xf32>, %w: tensor<?xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %a: index, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op 'row_parts' must be at least 1, and times the largest table's rows fit in 64 bits, got 4}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) rows(%a, %a) lr(%lr) {table_shapes = array<i64: 4611686018427387904, 1>, modes = [#emb.mode<sum>], padding_idx = array<i64: -1>, row_parts = 4 : i64} : tensor<?x1xf32>, tensor<?xf32>[tensor<?xi64>] -> tensor<?xf32>
  return
}

// -----

// multi_bag_update: row-wise Adagrad keeps one value per row of every table
func.func @f(%g: tensor<?x12xf32>, %w: tensor<1000xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %h: tensor<1000xf32>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op a state's dimension 0 (1000) does not match the tables' rows (150)}}
  %0:2 = emb.multi_bag_update rowwise_adagrad %g, %w[%i] offsets(%o : tensor<?xi64>) states(%h : tensor<1000xf32>) lr(%lr) {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: -1, -1>} : tensor<?x12xf32>, tensor<1000xf32>[tensor<?xi64>] -> tensor<1000xf32>, tensor<1000xf32>
  return
}

// -----

// multi_bag: a sequence table (mode none) needs its length
func.func @f(%t0: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op table 0 is 'none' (a sequence table) and needs 'sequence_lengths'}}
  %0 = emb.multi_bag %t0[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<none>], padding_idx = array<i64: -1>} : (tensor<10x4xf32>)[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// multi_bag: one sequence length per table
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op needs one sequence length per table (2), got 1}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, -1>, sequence_lengths = array<i64: 3>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x10xf32>
  return
}

// -----

// multi_bag: a pooled table's sequence length is 0
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'sequence_lengths' of table 0 (2) must be 0 (the table pools)}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, -1>, sequence_lengths = array<i64: 2, 3>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x10xf32>
  return
}

// -----

// multi_bag: a sequence length is not negative
func.func @f(%t0: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'sequence_lengths' of table 0 (-1) must be >= 0}}
  %0 = emb.multi_bag %t0[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<none>], padding_idx = array<i64: -1>, sequence_lengths = array<i64: -1>} : (tensor<10x4xf32>)[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// multi_bag: a sequence table fills L * D columns
func.func @f(%t0: tensor<10x4xf32>, %t1: tensor<5x2xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op 'output' dimension 1 (6) does not match the sum of the tables' columns (10)}}
  %0 = emb.multi_bag %t0, %t1[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, -1>, sequence_lengths = array<i64: 0, 3>} : (tensor<10x4xf32>, tensor<5x2xf32>)[tensor<?xi64>] -> tensor<?x6xf32>
  return
}

// -----

// bag: mode none is only for multi_bag's sequence tables
func.func @f(%w: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.bag' op mode 'none' (no pooling) is only for the sequence tables of emb.multi_bag}}
  %0 = emb.bag none %w[%i] offsets(%o : tensor<?xi64>) : tensor<10x4xf32>[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// multi_bag_update: a sequence table needs its length too
func.func @f(%g: tensor<?x8xf32>, %w: tensor<80xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op table 0 is 'none' (a sequence table) and needs 'sequence_lengths'}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<none>], padding_idx = array<i64: -1>} : tensor<?x8xf32>, tensor<80xf32>[tensor<?xi64>] -> tensor<80xf32>
  return
}

// -----

// multi_bag_update: grad has a sequence table's L * D columns
func.func @f(%g: tensor<?x8xf32>, %w: tensor<80xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>, %lr: f64) {
  // expected-error @+1 {{'emb.multi_bag_update' op 'grad' dimension 1 (8) does not match the sum of the tables' columns (16)}}
  %0 = emb.multi_bag_update sgd %g, %w[%i] offsets(%o : tensor<?xi64>) lr(%lr) {table_shapes = array<i64: 10, 8>, modes = [#emb.mode<none>], padding_idx = array<i64: -1>, sequence_lengths = array<i64: 2>} : tensor<?x8xf32>, tensor<80xf32>[tensor<?xi64>] -> tensor<80xf32>
  return
}

// -----

// multi_bag: L * D of a sequence table must not overflow
func.func @f(%t0: tensor<10x4xf32>, %i: tensor<?xi64>, %o: tensor<?xi64>) {
  // expected-error @+1 {{'emb.multi_bag' op table 0: its sequence length 4611686018427387905 times its dimension 4 overflows}}
  %0 = emb.multi_bag %t0[%i] offsets(%o : tensor<?xi64>) {modes = [#emb.mode<none>], padding_idx = array<i64: -1>, sequence_lengths = array<i64: 4611686018427387905>} : (tensor<10x4xf32>)[tensor<?xi64>] -> tensor<?x4xf32>
  return
}

// -----

// on_buffers: at least one init
func.func @f(%x: tensor<4xi64>) {
  // expected-error @+1 {{'emb.on_buffers' op must have at least one init}}
  "emb.on_buffers"(%x) <{operandSegmentSizes = array<i32: 1, 0>}> ({
  ^bb0:
  }) : (tensor<4xi64>) -> ()
  return
}

// -----

// on_buffers: one body buffer per init
func.func @f(%t: tensor<4x8xf32>) {
  // expected-error @+1 {{'emb.on_buffers' op the body must take one buffer per init, got 0 for 1}}
  %0 = emb.on_buffers outs(%t : tensor<4x8xf32>) {
  } -> tensor<4x8xf32>
  return
}

// -----

// on_buffers: the body's buffers are the inits' shapes, row-major
func.func @f(%t: tensor<4x8xf32>) {
  // expected-error @+1 {{'emb.on_buffers' op the body's argument #0 must be 'memref<4x8xf32>', got 'memref<4x8xf32, strided<[16, 1]>>'}}
  %0 = emb.on_buffers outs(%t : tensor<4x8xf32>) {
  ^bb0(%b: memref<4x8xf32, strided<[16, 1]>>):
  } -> tensor<4x8xf32>
  return
}

// -----

// on_buffers: a result per init, of its type (destination style)
func.func @f(%t: tensor<4x8xf32>) {
  // expected-error @+1 {{'emb.on_buffers' op expected type of operand #0 ('tensor<4x8xf32>') to match type of corresponding result ('tensor<4x8xf16>')}}
  %0 = emb.on_buffers outs(%t : tensor<4x8xf32>) {
  ^bb0(%b: memref<4x8xf32>):
  } -> tensor<4x8xf16>
  return
}
