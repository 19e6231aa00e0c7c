//===- EmbOps.td - emb dialect ops --------------------------*- tablegen -*-===//
//
// The ops of the emb dialect. Operand types are declared as ranked tensors
// here and checked in the C++ verifiers (EmbOps.cpp), so that every message
// names the operand or attribute at fault (`'weight' must be ...`).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_DIALECT_EMBOPS_TD
#define EMB_DIALECT_EMBOPS_TD

include "emb/Dialect/EmbDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.td"

//===----------------------------------------------------------------------===//
// Forward ops
//===----------------------------------------------------------------------===//

def Emb_LookupOp : Emb_Op<"lookup", [Pure]> {
  let summary = "embedding lookup: out[i..., :] = weight[indices[i...], :]";
  let description = [{
    Gathers one row of `weight` (`[V, D]`) per element of `indices` (any
    rank, 0-D included). The result has shape `indices.shape + [D]` and the
    element type of `weight`.

    Attributes:
    - `padding_idx` (optional, in `[-V, V)`; a negative value means `V +
      padding_idx`): the padding row.
    - `padding_mode`: what the lookup returns for the padding row.
      `keep` (default, PyTorch): the row as stored; `zero` (Lucid, torch.js):
      zeros. Without `padding_idx` it has no effect.

    `max_norm` is not an attribute of the lookup: a producer emits an
    `emb.renorm` of the weight first and looks up in its result.

    Example:

    ```mlir
    %out = emb.lookup %weight[%ids] {padding_idx = 0 : i64,
                                     padding_mode = #emb.padding_mode<zero>}
        : tensor<1000x64xf32>[tensor<8x32xi64>] -> tensor<8x32x64xf32>
    ```
  }];
  let arguments = (ins
    AnyRankedTensor:$weight,
    AnyRankedTensor:$indices,
    OptionalAttr<I64Attr>:$padding_idx,
    DefaultValuedAttr<Emb_PaddingModeAttr, "::mlir::emb::PaddingMode::keep">:$padding_mode
  );
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $weight `[` $indices `]` attr-dict `:` type($weight) `[` type($indices) `]`
    `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_BagOp : Emb_Op<"bag", [Pure, AttrSizedOperandSegments]> {
  let summary = "pooled embedding lookup (embedding_bag): sum, mean, sqrtn or max per bag, of a float or a quantised table";
  let description = [{
    Reduces the rows of `weight` (`[V, D]`) selected by each bag of
    `indices` into one row of the `[B, D]` result.

    Input forms:
    - 1-D `indices` with 1-D `offsets`: bag `b` is
      `indices[offsets[b] : offsets[b+1]]`; without `include_last_offset`
      the last bag ends at `len(indices)` and `B = len(offsets)`; with it,
      `B = len(offsets) - 1` and `offsets[-1]` must equal `len(indices)`.
    - 2-D `indices` `[B, L]` and no `offsets`: every row is a bag of length
      L (`include_last_offset` has no effect).

    `mode` is `sum` (`sum_j psw_j * W[x_j]`), `mean` (that sum divided by
    the count of non-padding entries, or with `per_sample_weights` by
    `sum_j psw_j`), `sqrtn` (the sum divided by `sqrt(sum_j psw_j^2)`, i.e.
    by `sqrt(count)` without weights; TensorFlow's combiner) or `max`
    (element-wise, ties to the first entry in bag order). Entries equal to
    `padding_idx` are skipped; an empty or all-padding bag, or a mean /
    sqrtn bag whose denominator is 0, gives a zero row (an empty bag's
    `max_indices` are -1).

    `per_sample_weights` (same shape as `indices`, element type of `weight`)
    is allowed with every mode but `max` (`psw_j = 1` without them). The
    optional second result `max_indices` (`[B, D]`, i64) is allowed with
    `max` only; `emb.bag_grad` uses it.

    With `quantized` (docs/semantics.md §6.2) `weight` is a row-wise
    quantised table of bytes, `[V, D + 8]` i8 for `int8` (D unsigned bytes
    `q`, then `scale` and `bias` as little-endian f32) or `[V, ceil(D/2) +
    4]` i8 for `int4` (element `2k` in the low nibble of byte `k`, `2k+1`
    in the high one, then `scale` and `bias` as f16): exactly what torch's
    `embedding_bag_byte_prepack` / `embedding_bag_4bit_prepack` produce.
    Each element is `q * scale + bias` in f32; D is the output's (static)
    dimension, and the output and `per_sample_weights` are f32 or f16. No
    `max_indices` (quantised tables have no gradient).

    Example:

    ```mlir
    %out = emb.bag sum %weight[%ids] offsets(%offs : tensor<?xi64>)
        per_sample_weights(%psw : tensor<?xf32>) {include_last_offset}
        : tensor<1000000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
    %m, %argmax = emb.bag max %weight[%ids2d]
        : tensor<?x128xf16>[tensor<?x32xi32>] -> tensor<?x128xf16>, tensor<?x128xi64>
    %q = emb.bag sum %packed[%ids] offsets(%offs : tensor<?xi64>)
        {quantized = #emb.quantized<int8>}
        : tensor<1000000x136xi8>[tensor<?xi64>] -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins
    Emb_BagModeAttr:$mode,
    AnyRankedTensor:$weight,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    UnitAttr:$include_last_offset,
    OptionalAttr<I64Attr>:$padding_idx,
    OptionalAttr<Emb_QuantizationAttr>:$quantized
  );
  let results = (outs AnyRankedTensor:$output,
                      Optional<AnyRankedTensor>:$max_indices);
  let assemblyFormat = [{
    custom<BagMode>($mode) $weight `[` $indices `]`
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    attr-dict `:` type($weight) `[` type($indices) `]`
    `->` type($output) (`,` type($max_indices)^)?
  }];
  let extraClassDeclaration = [{
    /// The embedding dimension D: the weight's, or for a quantised table
    /// the output's.
    int64_t getEmbeddingDim();
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_MultiBagOp : Emb_Op<"multi_bag", [Pure, AttrSizedOperandSegments]> {
  let summary = "many tables in one call: FBGEMM's table-batched embedding_bag";
  let description = [{
    Pools the bags of `T` tables in one op (docs/semantics.md §6.3,
    TorchRec's KJT layout): `tables` are `T` tables `[V_t, D_t]` of one
    float type (static D_t), `indices` the indices of all tables
    concatenated, `offsets` (`T * B + 1` entries, table-major) the bags:
    bag `b` of table `t` is `indices[offsets[t*B + b] : offsets[t*B + b +
    1]]`. The result is `[B, sum_t C_t]`: table `t`'s pooled row lands in
    columns `[sum_{s<t} C_s, sum_{s<=t} C_s)`, `C_t = D_t` (a sequence
    table, below: `L_t * D_t`).

    `modes` gives each table's mode (`sum`, `mean`, `max`, `sqrtn`, as in
    `emb.bag`) and `padding_idx` each table's padding row, in `[0, V_t)`,
    or -1 for none. The optional `per_sample_weights` (the indices' shape,
    the tables' element type) weigh every table's entries; no table's mode
    may then be `max`.

    Mode `none` makes a sequence table: every bag of table `t` has the same
    length `L_t`, given by `sequence_lengths` (one entry per table, 0 for a
    pooled table), and its `L_t` rows land side by side in `L_t * D_t`
    columns (entry `j` of the bag in columns `j * D_t` on). A padding entry
    gives a zero row and `per_sample_weights` scale the rows. Bags of
    another length are undefined behaviour (the runtime checks them).

    With `bags(%first, %count)`, the op pools bags `[first, first + count)`
    of every table (the result is `[count, sum C_t]`): a runtime splits the
    bags over threads this way.

    Example:

    ```mlir
    %out = emb.multi_bag %t0, %t1[%ids] offsets(%offs : tensor<?xi64>)
        {modes = [#emb.mode<sum>, #emb.mode<mean>], padding_idx = array<i64: -1, 0>}
        : (tensor<1000x64xf32>, tensor<50x16xf32>)[tensor<?xi64>] -> tensor<?x80xf32>
    ```
  }];
  let arguments = (ins
    Variadic<AnyRankedTensor>:$tables,
    AnyRankedTensor:$indices,
    AnyRankedTensor:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    Optional<Index>:$bag_offset,
    Optional<Index>:$bag_count,
    TypedArrayAttrBase<Emb_BagModeAttr, "one bag mode per table">:$modes,
    DenseI64ArrayAttr:$padding_idx,
    OptionalAttr<DenseI64ArrayAttr>:$sequence_lengths
  );
  let results = (outs AnyRankedTensor:$output);
  let assemblyFormat = [{
    $tables `[` $indices `]` `offsets` `(` $offsets `:` type($offsets) `)`
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    (`bags` `(` $bag_offset^ `,` $bag_count `)`)?
    attr-dict `:` `(` type($tables) `)` `[` type($indices) `]` `->` type($output)
  }];
  let hasVerifier = 1;
}

def Emb_RenormOp : Emb_Op<"renorm", [Pure, DestinationStyleOpInterface]> {
  let summary = "max_norm renormalisation of the rows referenced by indices";
  let description = [{
    Returns `weight` with every **distinct** row referenced by `indices`
    whose p-norm (`p = norm_type`) is strictly greater than `max_norm`
    scaled by `max_norm / (norm + 1e-7)`; every other row is unchanged.
    `p` follows `torch.norm`: `inf` is max|w|, `-inf` is min|w|, `0` counts
    non-zeros, otherwise `(sum |w|^p)^(1/p)`.

    The op is in destination style with `weight` as its init, so
    bufferisation renormalises the table in place, as PyTorch does.
    `indices` may have any rank (a lookup's or a bag's indices).

    Example:

    ```mlir
    %w2 = emb.renorm %weight[%ids] {max_norm = 1.0 : f64, norm_type = 2.0 : f64}
        : tensor<1000x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
    %out = emb.lookup %w2[%ids] : tensor<1000x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins
    AnyRankedTensor:$weight,
    AnyRankedTensor:$indices,
    F64Attr:$max_norm,
    DefaultValuedAttr<F64Attr, "2.0">:$norm_type
  );
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $weight `[` $indices `]` attr-dict `:` type($weight) `[` type($indices) `]`
    `->` type($result)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getWeightMutable();
    }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Gradients
//===----------------------------------------------------------------------===//

def Emb_LookupGradOp : Emb_Op<"lookup_grad", [Pure, AttrSizedOperandSegments]> {
  let summary = "dense weight gradient of emb.lookup";
  let description = [{
    `grad` has shape `indices.shape + [D]`; the result is the dense `[V, D]`
    weight gradient (V = `num_embeddings`), zero where nothing contributes:

    `gW[x_i] += grad_i * s_i * grad_scale` for every position `i` whose index
    is not `padding_idx` (the padding row's gradient is zero), with
    `s_i = 1 / count(x_i)` over the whole flattened `indices` when
    `scale_grad_by_freq` is set, else 1.

    `grad_scale` (default 1) multiplies the whole gradient; the
    `unit-scaling` profile sets it to `sqrt(V / numel(indices))`.
    `deterministic` asks a GPU kernel for bit-reproducible results (CPU
    kernels always are).

    With `rows(%first, %count)`, the op computes only rows `[%first, %first
    + %count)` of the gradient (the result is `[%count, D]`): contributions
    to other rows are dropped. A runtime splits a large gradient over
    threads this way, each thread owning a range of rows.

    Example:

    ```mlir
    %gw = emb.lookup_grad %g[%ids] {num_embeddings = 1000 : i64, scale_grad_by_freq}
        : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
    ```
  }];
  let arguments = (ins
    AnyRankedTensor:$grad,
    AnyRankedTensor:$indices,
    Optional<Index>:$row_offset,
    Optional<Index>:$row_count,
    I64Attr:$num_embeddings,
    OptionalAttr<I64Attr>:$padding_idx,
    UnitAttr:$scale_grad_by_freq,
    DefaultValuedAttr<F64Attr, "1.0">:$grad_scale,
    UnitAttr:$deterministic
  );
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $grad `[` $indices `]` (`rows` `(` $row_offset^ `,` $row_count `)`)?
    attr-dict `:` type($grad) `[` type($indices) `]` `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_BagGradOp : Emb_Op<"bag_grad", [Pure, AttrSizedOperandSegments]> {
  let summary = "dense weight gradient of emb.bag";
  let description = [{
    `grad` is the `[B, D]` gradient of the bag output; the result is the
    dense `[V, D]` weight gradient (V = `num_embeddings`). The bag structure
    (`indices`, `offsets`, `include_last_offset`, `padding_idx`) is the one
    of the forward `emb.bag`.

    - `sum` / `mean` / `sqrtn`: `gW[x_j] += grad[bag(j)] * psw_j * m_j *
      s_j * grad_scale` for every non-padding entry `j`, with `m_j` the
      inverse of the forward's denominator of bag(j) (0 where it is 0): 1
      for `sum`, the count of non-padding entries or `sum psw` for `mean`,
      `sqrt` of the count or of `sum psw^2` for `sqrtn` (the denominator is
      a constant of the weights), and `s_j = 1 / count(x_j)` over all
      indices when `scale_grad_by_freq`.
    - `max`: `gW[max_indices[b, d], d] += grad[b, d] * grad_scale` for every
      `b, d` whose `max_indices` entry is not -1; needs the `max_indices`
      operand (the forward's second result). `scale_grad_by_freq` and
      `per_sample_weights` are not allowed with `max`.

    With `rows(%first, %count)`, the op computes only rows `[%first, %first
    + %count)` of the gradient (the result is `[%count, D]`): contributions
    to other rows are dropped. A runtime splits a large gradient over
    threads this way, each thread owning a range of rows.

    Example:

    ```mlir
    %gw = emb.bag_grad mean %g[%ids] offsets(%offs : tensor<?xi64>)
        {num_embeddings = 1000 : i64, padding_idx = 0 : i64}
        : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
    ```
  }];
  let arguments = (ins
    Emb_BagModeAttr:$mode,
    AnyRankedTensor:$grad,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    Optional<AnyRankedTensor>:$max_indices,
    Optional<Index>:$row_offset,
    Optional<Index>:$row_count,
    I64Attr:$num_embeddings,
    UnitAttr:$include_last_offset,
    OptionalAttr<I64Attr>:$padding_idx,
    UnitAttr:$scale_grad_by_freq,
    DefaultValuedAttr<F64Attr, "1.0">:$grad_scale,
    UnitAttr:$deterministic
  );
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    custom<BagMode>($mode) $grad `[` $indices `]`
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    (`max_indices` `(` $max_indices^ `:` type($max_indices) `)`)?
    (`rows` `(` $row_offset^ `,` $row_count `)`)?
    attr-dict `:` type($grad) `[` type($indices) `]` `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_BagPswGradOp : Emb_Op<"bag_psw_grad", [Pure]> {
  let summary = "gradient of emb.bag (sum mode) with respect to per_sample_weights";
  let description = [{
    `grad_j = dot(grad[bag(j)], weight[x_j])` for every entry `j` of
    `indices`, and 0 for padding entries. The result has the shape of
    `indices` and the element type of `weight`. The bag structure is the one
    of the forward `emb.bag` (whose mode must be `sum`).

    Example:

    ```mlir
    %gpsw = emb.bag_psw_grad %g, %weight[%ids] offsets(%offs : tensor<?xi64>)
        : tensor<?x64xf32>, tensor<1000x64xf32>[tensor<?xi64>] -> tensor<?xf32>
    ```
  }];
  let arguments = (ins
    AnyRankedTensor:$grad,
    AnyRankedTensor:$weight,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$offsets,
    UnitAttr:$include_last_offset,
    OptionalAttr<I64Attr>:$padding_idx
  );
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $grad `,` $weight `[` $indices `]`
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    attr-dict `:` type($grad) `,` type($weight) `[` type($indices) `]`
    `->` type($result)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_LookupSparseGradOp : Emb_Op<"lookup_sparse_grad", [Pure]> {
  let summary = "sparse (row indices + rows) weight gradient of emb.lookup";
  let description = [{
    The contributions of `emb.lookup_grad` as a sparse `[V, D]` gradient in
    COO form: `rows` (i64, `[N]`) and `values` (`[N, D]`). Without
    `coalesced` this is PyTorch's uncoalesced form: one row per non-padding
    position of `indices`, in input order, `values[k] = grad[pos_k] *
    grad_scale`. With `coalesced`, `rows` are the distinct non-padding
    indices in ascending order and `values` the sums of their
    contributions. N depends on the data, so both results are dynamic.
    (`scale_grad_by_freq` is not allowed with sparse gradients.)

    Example:

    ```mlir
    %rows, %vals = emb.lookup_sparse_grad %g[%ids] {num_embeddings = 1000 : i64, coalesced}
        : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x64xf32>
    ```
  }];
  let arguments = (ins
    AnyRankedTensor:$grad,
    AnyRankedTensor:$indices,
    I64Attr:$num_embeddings,
    OptionalAttr<I64Attr>:$padding_idx,
    DefaultValuedAttr<F64Attr, "1.0">:$grad_scale,
    UnitAttr:$coalesced
  );
  let results = (outs AnyRankedTensor:$rows, AnyRankedTensor:$values);
  let assemblyFormat = [{
    $grad `[` $indices `]` attr-dict `:` type($grad) `[` type($indices) `]`
    `->` type($rows) `,` type($values)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_BagSparseGradOp : Emb_Op<"bag_sparse_grad",
                                 [Pure, AttrSizedOperandSegments]> {
  let summary = "sparse (row indices + rows) weight gradient of emb.bag";
  let description = [{
    The contributions of `emb.bag_grad` (`sum`, `mean` or `sqrtn`; `max` has no
    sparse gradient) in COO form: `rows` (i64, `[N]`) and `values`
    (`[N, D]`). Without `coalesced`: one row per non-padding entry of
    `indices`, in input order, `values[k] = grad[bag(j_k)] * psw_j * m_j *
    grad_scale`; with `coalesced`: the distinct rows in ascending order,
    contributions summed.

    Example:

    ```mlir
    %rows, %vals = emb.bag_sparse_grad sum %g[%ids] offsets(%offs : tensor<?xi64>)
        {num_embeddings = 1000 : i64}
        : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x64xf32>
    ```
  }];
  let arguments = (ins
    Emb_BagModeAttr:$mode,
    AnyRankedTensor:$grad,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    I64Attr:$num_embeddings,
    UnitAttr:$include_last_offset,
    OptionalAttr<I64Attr>:$padding_idx,
    DefaultValuedAttr<F64Attr, "1.0">:$grad_scale,
    UnitAttr:$coalesced
  );
  let results = (outs AnyRankedTensor:$rows, AnyRankedTensor:$values);
  let assemblyFormat = [{
    custom<BagMode>($mode) $grad `[` $indices `]`
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    attr-dict `:` type($grad) `[` type($indices) `]`
    `->` type($rows) `,` type($values)
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

//===----------------------------------------------------------------------===//
// The backward fused with an optimizer
//===----------------------------------------------------------------------===//

def Emb_BagUpdateOp : Emb_Op<"bag_update", [Pure, AttrSizedOperandSegments]> {
  let summary = "the weight gradient of emb.bag fused with an optimizer step (training without a dense gradient)";
  let description = [{
    Applies one optimizer step to the rows of `weight` that the gradient of
    `emb.bag` touches, without materialising that gradient
    (docs/semantics.md §6.4). The bag structure (`indices`, `offsets`,
    `per_sample_weights`, `max_indices`, `include_last_offset`,
    `padding_idx`, `scale_grad_by_freq`, `grad_scale`) is the one of
    `emb.bag_grad`; an embedding lookup is the `sum` bag of 2-D indices
    `[N, 1]`.

    First the contributions to each touched row `r` are summed in input
    order into `g_r` (in f32, f64 for f64 tables); a row is touched when
    some non-padding entry (with `max`: some `max_indices` element) names
    it. Then, with `g = g_r + weight_decay * W[r]`, once per touched row:
    - `sgd`: `W[r] -= lr * g` (no state);
    - `adagrad` (state `H`, `[V, D]`): `H[r] += g^2`,
      `W[r] -= lr * g / (sqrt(H[r]) + eps)`;
    - `rowwise_adagrad` (state `h`, `[V]`): `h[r] += mean_d(g^2)`,
      `W[r] -= lr * g / (sqrt(h[r]) + eps)`;
    - `adam` (states `M`, `S`, `[V, D]`; `step` = t >= 1, lazy like
      `torch.optim.SparseAdam`): `M[r] = beta1 M[r] + (1 - beta1) g`,
      `S[r] = beta2 S[r] + (1 - beta2) g^2`,
      `W[r] -= lr * (M[r] / (1 - beta1^t)) / (sqrt(S[r] / (1 - beta2^t)) + eps)`.
    Untouched rows and their state are unchanged. States are f32 (f64 for
    f64 tables); W is rounded once to its type. The results are the new
    `weight` and `states`, in that order: a kernel whose buffers are
    writable bufferises them in place.

    `lr` (f64) and `step` (i64, `adam` only) are operands, so that a
    schedule does not change the code; the other hyper-parameters are
    attributes. With `rows(%first, %count)`, `weight` and the states hold
    the table's rows from `%first` on (at least `%count` of them: a runtime
    passes exactly those, splitting the table over threads this way) and
    only rows `[%first, %first + %count)` are updated.

    Example:

    ```mlir
    %w2, %h2 = emb.bag_update rowwise_adagrad sum %g[%ids] offsets(%offs : tensor<?xi64>)
        weight(%w : tensor<1000x64xf32>) states(%h : tensor<1000xf32>) lr(%lr)
        {num_embeddings = 1000 : i64, eps = 1.0e-08 : f64}
        : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>, tensor<1000xf32>
    ```
  }];
  let arguments = (ins
    Emb_OptimizerAttr:$optimizer,
    Emb_BagModeAttr:$mode,
    AnyRankedTensor:$grad,
    AnyRankedTensor:$indices,
    Optional<AnyRankedTensor>:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    Optional<AnyRankedTensor>:$max_indices,
    Optional<Index>:$row_offset,
    Optional<Index>:$row_count,
    AnyRankedTensor:$weight,
    Variadic<AnyRankedTensor>:$states,
    F64:$lr,
    Optional<I64>:$step,
    I64Attr:$num_embeddings,
    UnitAttr:$include_last_offset,
    OptionalAttr<I64Attr>:$padding_idx,
    UnitAttr:$scale_grad_by_freq,
    DefaultValuedAttr<F64Attr, "1.0">:$grad_scale,
    DefaultValuedAttr<F64Attr, "0.0">:$weight_decay,
    DefaultValuedAttr<F64Attr, "1.0e-8">:$eps,
    DefaultValuedAttr<F64Attr, "0.9">:$beta1,
    DefaultValuedAttr<F64Attr, "0.999">:$beta2
  );
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    custom<Optimizer>($optimizer) custom<BagMode>($mode) $grad `[` $indices `]`
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    (`max_indices` `(` $max_indices^ `:` type($max_indices) `)`)?
    (`rows` `(` $row_offset^ `,` $row_count `)`)?
    `weight` `(` $weight `:` type($weight) `)`
    (`states` `(` $states^ `:` type($states) `)`)?
    `lr` `(` $lr `)` (`step` `(` $step^ `)`)?
    attr-dict `:` type($grad) `[` type($indices) `]` `->` type($results)
  }];
  let extraClassDeclaration = [{
    /// How many state tensors `optimizer` keeps (0, 1 or 2).
    static unsigned numStates(Optimizer optimizer);
  }];
  let hasVerifier = 1;
  let hasCanonicalizeMethod = 1;
}

def Emb_MultiBagUpdateOp : Emb_Op<"multi_bag_update",
                                  [Pure, AttrSizedOperandSegments]> {
  let summary = "many tables' bag gradient fused with an optimizer step, every table in one op";
  let description = [{
    The fused optimizer step of `emb.bag_update` (docs/semantics.md §6.4)
    for the `T` tables of a table-batched bag (§6.3), in FBGEMM's layout:
    `weights` (1-D) holds every table flat, one after another (table `t` is
    `[V_t, D_t]`, `table_shapes = [V_0, D_0, V_1, D_1, ...]`), and each state
    in `states` is flat the same way (`sum V_t * D_t` elements, or `sum V_t`
    for `rowwise_adagrad`). `indices` (1-D, every table's concatenated),
    `offsets` (`T * B + 1`, table-major), `per_sample_weights`, `modes` and
    `padding_idx` (-1: none) are those of `emb.multi_bag`; `grad` is the
    `[B, sum_t C_t]` gradient of its output, table `t`'s columns
    `[sum_{s<t} C_s, sum_{s<=t} C_s)` (`C_t` as in `emb.multi_bag`). Each table's touched rows, and
    their state, are updated as `emb.bag_update` updates them; a `max`
    table has no step here (it would need the forward's `max_indices`). A
    `none` table (`sequence_lengths`, as in `emb.multi_bag`) takes each of
    its entries' rows from its own `D_t` columns of `grad`. The results are
    the new `weights`, then the new `states`.

    With `rows(%first, %count)` only rows `[first, first + count)` of the
    tables' concatenated rows (table `t`'s rows are `sum_{s<t} V_s` on) are
    updated: a runtime splits the rows of every table over threads this
    way. With `row_parts = P` as well, `rows()` counts P equal parts of
    every table instead: table `t` updates its rows
    `[floor(min(first, P) * V_t / P), floor(min(first + count, P) * V_t / P))`, so
    that each part holds a share of every table's rows (and of its
    entries, which follow the rows), however the tables' sizes and bag
    lengths differ.

    Example:

    ```mlir
    %w2, %h2 = emb.multi_bag_update rowwise_adagrad %g, %w[%ids] offsets(%offs : tensor<?xi64>)
        states(%h : tensor<1050xf32>) lr(%lr)
        {table_shapes = array<i64: 1000, 64, 50, 16>, modes = [#emb.mode<sum>, #emb.mode<mean>],
         padding_idx = array<i64: -1, 0>}
        : tensor<?x80xf32>, tensor<64800xf32>[tensor<?xi64>] -> tensor<64800xf32>, tensor<1050xf32>
    ```
  }];
  let arguments = (ins
    Emb_OptimizerAttr:$optimizer,
    AnyRankedTensor:$grad,
    AnyRankedTensor:$weights,
    AnyRankedTensor:$indices,
    AnyRankedTensor:$offsets,
    Optional<AnyRankedTensor>:$per_sample_weights,
    Optional<Index>:$row_offset,
    Optional<Index>:$row_count,
    Variadic<AnyRankedTensor>:$states,
    F64:$lr,
    Optional<I64>:$step,
    DenseI64ArrayAttr:$table_shapes,
    TypedArrayAttrBase<Emb_BagModeAttr, "one bag mode per table">:$modes,
    DenseI64ArrayAttr:$padding_idx,
    OptionalAttr<DenseI64ArrayAttr>:$sequence_lengths,
    OptionalAttr<I64Attr>:$row_parts,
    DefaultValuedAttr<F64Attr, "0.0">:$weight_decay,
    DefaultValuedAttr<F64Attr, "1.0e-8">:$eps,
    DefaultValuedAttr<F64Attr, "0.9">:$beta1,
    DefaultValuedAttr<F64Attr, "0.999">:$beta2
  );
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    custom<Optimizer>($optimizer) $grad `,` $weights `[` $indices `]`
    `offsets` `(` $offsets `:` type($offsets) `)`
    (`per_sample_weights` `(` $per_sample_weights^ `:` type($per_sample_weights) `)`)?
    (`rows` `(` $row_offset^ `,` $row_count `)`)?
    (`states` `(` $states^ `:` type($states) `)`)?
    `lr` `(` $lr `)` (`step` `(` $step^ `)`)?
    attr-dict `:` type($grad) `,` type($weights) `[` type($indices) `]`
    `->` type($results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Lowered form
//===----------------------------------------------------------------------===//

def Emb_OnBuffersOp : Emb_Op<"on_buffers", [
    DestinationStyleOpInterface, RecursiveMemoryEffects, SingleBlock,
    NoTerminator, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<BufferizableOpInterface,
        ["bufferizesToMemoryRead", "bufferizesToMemoryWrite",
         "getAliasingValues", "bufferize"]>]> {
  let summary = "code that writes its results' buffers (the GPU lowering's form)";
  let description = [{
    The form convert-emb-to-gpu lowers an op into: the kernels (launches,
    scratch memory, host loops) are the body, which sees the buffer of
    each init as a block argument (a memref of the init's shape, identity
    layout) and writes the op's results there. Upstream bufferisation
    decides what those buffers are, as for any destination-style op:

    - an init that is a `tensor.empty` is a new result. When the result
      is materialised in a buffer (`bufferization.materialize_in_destination
      ... restrict`), `eliminate-empty-tensors` makes that buffer the init,
      so the kernels write straight into it; otherwise One-Shot Bufferize
      allocates one.
    - with `updates`, the body reads its inits' old contents and updates
      them (renorm, the fused optimizer step): One-Shot Bufferize writes
      in place when nothing reads the old tensor later, else into a copy.

    The body reads its inputs through `bufferization.to_buffer ... read_only`
    ops (before it or in it); the tensors they read are also its `ins`, so that
    the analysis sees the reads where the kernels make them, at the op: an
    init that aliases an input (a gradient materialised into the tensor it
    is computed from, an update of the table that is also the gradient) is
    then written out of place. An init whose buffer has another type (a
    strided view, another memory space) is copied into a row-major one for
    the body and back after it. Bufferisation inlines the body; nothing
    else lowers this op.

    Example (a lookup written by one launch):

    ```mlir
    %wb = bufferization.to_buffer %w read_only : tensor<1000x64xf32> to memref<1000x64xf32>
    %e = tensor.empty(%n) : tensor<?x64xf32>
    %r = emb.on_buffers ins(%w : tensor<1000x64xf32>) outs(%e : tensor<?x64xf32>) {
    ^bb0(%out: memref<?x64xf32>):
      gpu.launch ... { ... vector.load %wb[...] ... vector.store %v, %out[%row, %c] ... }
    } -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs,
                       Variadic<AnyRankedTensor>:$inits, UnitAttr:$updates);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    (`updates` $updates^)? (`ins` `(` $inputs^ `:` type($inputs) `)`)?
    `outs` `(` $inits `:` type($inits) `)` $body attr-dict `->` type($results)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitsMutable();
    }
  }];
  let skipDefaultBuilders = 1;
  let builders = [
    // No inputs yet; the body block gets one memref argument per init.
    OpBuilder<(ins "::mlir::ValueRange":$inits, "bool":$updates)>
  ];
  let hasVerifier = 1;
}

#endif // EMB_DIALECT_EMBOPS_TD
