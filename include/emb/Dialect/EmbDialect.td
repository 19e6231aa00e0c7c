//===- EmbDialect.td - the emb dialect ---------------------*- tablegen -*-===//
//
// The `emb` dialect: tensor-level ops of the embedding family.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_DIALECT_EMBDIALECT_TD
#define EMB_DIALECT_EMBDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Emb_Dialect : Dialect {
  let name = "emb";
  let cppNamespace = "::mlir::emb";
  let summary = "Embedding lookups, pooled lookups (bags), renorm and their gradients";
  let description = [{
    The `emb` dialect describes the embedding family of ops at tensor level,
    with value semantics, so that any MLIR-based compiler can emit them:
    `emb.lookup` (`torch.nn.functional.embedding`), `emb.bag`
    (`embedding_bag` in `sum` / `mean` / `max` mode, and TensorFlow's `sqrtn`;
    float or row-wise quantised tables), `emb.multi_bag` (many tables in one
    op), `emb.renorm` (the in-place `max_norm` renormalisation), and the gradients
    `emb.lookup_grad`, `emb.bag_grad`, `emb.bag_psw_grad`,
    `emb.lookup_sparse_grad` and `emb.bag_sparse_grad`, and `emb.bag_update`
    / `emb.multi_bag_update` (the gradient fused with an optimizer step that
    updates the table, or many tables).

    Notation: the table (weight) is `[V, D]` with V = num_embeddings and D =
    embedding_dim; indices are i32 or i64; weights and gradients are f32, f64,
    f16 or bf16 (f16/bf16 accumulate in f32). The normative semantics of
    every op, with all edge cases, is `docs/semantics.md`; the op
    descriptions below give the parts that matter to a producer of the IR.

    Verifiers check everything that is visible statically (ranks, element
    types, shape agreement, `padding_idx` range for a static V, option
    combinations); what depends on values (an index out of range, offsets
    that decrease) is checked by the runtime before a kernel runs.
  }];
  let useDefaultAttributePrinterParser = 1;
}

class Emb_Op<string mnemonic, list<Trait> traits = []>
    : Op<Emb_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Emb_BagMode_Sum  : I32EnumAttrCase<"sum", 0>;
def Emb_BagMode_Mean : I32EnumAttrCase<"mean", 1>;
def Emb_BagMode_Max  : I32EnumAttrCase<"max", 2>;
// TensorFlow's combiner: the weighted sum over sqrt(sum of squared weights).
def Emb_BagMode_Sqrtn : I32EnumAttrCase<"sqrtn", 3>;
// No pooling: a sequence table's rows side by side (emb.multi_bag only).
def Emb_BagMode_None : I32EnumAttrCase<"none", 4>;
def Emb_BagMode : I32EnumAttr<"BagMode", "reduction of an embedding bag",
    [Emb_BagMode_Sum, Emb_BagMode_Mean, Emb_BagMode_Max, Emb_BagMode_Sqrtn,
     Emb_BagMode_None]> {
  let cppNamespace = "::mlir::emb";
  let genSpecializedAttr = 0;
}
// In op assembly the mode is a bare keyword (`emb.bag sum ...`, printed by
// custom<BagMode>); on its own it reads `#emb.mode<sum>`.
def Emb_BagModeAttr : EnumAttr<Emb_Dialect, Emb_BagMode, "mode"> {
  let assemblyFormat = "`<` $value `>`";
}

def Emb_PaddingMode_Keep : I32EnumAttrCase<"keep", 0>;
def Emb_PaddingMode_Zero : I32EnumAttrCase<"zero", 1>;
def Emb_PaddingMode : I32EnumAttr<"PaddingMode",
    "what the forward lookup returns for padding_idx",
    [Emb_PaddingMode_Keep, Emb_PaddingMode_Zero]> {
  let cppNamespace = "::mlir::emb";
  let genSpecializedAttr = 0;
}
def Emb_PaddingModeAttr : EnumAttr<Emb_Dialect, Emb_PaddingMode, "padding_mode"> {
  let assemblyFormat = "`<` $value `>`";
}

// Row-wise quantised tables (docs/semantics.md §6.2): FBGEMM's fused formats,
// as torch's embedding_bag_byte_prepack / embedding_bag_4bit_prepack make them.
def Emb_Quantization_Int8 : I32EnumAttrCase<"int8", 8>;
def Emb_Quantization_Int4 : I32EnumAttrCase<"int4", 4>;
def Emb_Quantization : I32EnumAttr<"Quantization",
    "the byte layout of a row-wise quantised table",
    [Emb_Quantization_Int8, Emb_Quantization_Int4]> {
  let cppNamespace = "::mlir::emb";
  let genSpecializedAttr = 0;
}
def Emb_QuantizationAttr : EnumAttr<Emb_Dialect, Emb_Quantization, "quantized"> {
  let assemblyFormat = "`<` $value `>`";
}

// The optimizer of a fused backward step (docs/semantics.md §6.4).
def Emb_Optimizer_Sgd : I32EnumAttrCase<"sgd", 0>;
def Emb_Optimizer_Adagrad : I32EnumAttrCase<"adagrad", 1>;
def Emb_Optimizer_RowwiseAdagrad : I32EnumAttrCase<"rowwise_adagrad", 2>;
def Emb_Optimizer_Adam : I32EnumAttrCase<"adam", 3>;
def Emb_Optimizer : I32EnumAttr<"Optimizer",
    "the optimizer fused into a backward step",
    [Emb_Optimizer_Sgd, Emb_Optimizer_Adagrad, Emb_Optimizer_RowwiseAdagrad,
     Emb_Optimizer_Adam]> {
  let cppNamespace = "::mlir::emb";
  let genSpecializedAttr = 0;
}
// A bare keyword in op assembly (custom<Optimizer>), `#emb.optimizer<adam>`
// on its own.
def Emb_OptimizerAttr : EnumAttr<Emb_Dialect, Emb_Optimizer, "optimizer"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // EMB_DIALECT_EMBDIALECT_TD
