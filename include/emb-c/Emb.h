/*===- emb-c/Emb.h - C API of emb-mlir ----------------------------*- C -*-===*\
|*                                                                            *|
|* The MLIR-convention C API: the dialect handle and pass registration, plus  *|
|* a C entry point to the JIT (embedding and embedding_bag on host buffers),  *|
|* and table memory on transparent huge pages.                                *|
|* libEmbMLIR-C.so also exports MLIR's own C API for IR and passes            *|
|* (mlir-c/IR.h, mlir-c/Pass.h), so a C program needs only this library.     *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef EMB_C_EMB_H
#define EMB_C_EMB_H

#include "mlir-c/IR.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mlirGetDialectHandle__emb__(): register or load the emb dialect. */
MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(Emb, emb);

/* Inserts the emb dialect and every upstream dialect and extension the
 * emb pipelines use (func, tensor, bufferization, vector, llvm, ...). */
MLIR_CAPI_EXPORTED void
mlirEmbRegisterAllDialects(MlirDialectRegistry registry);

/* Registers convert-emb-to-scf, emb-prefetch-rows and emb-cpu-pipeline, for
 * mlirParsePassPipeline / mlirOpPassManagerAddPipeline. */
MLIR_CAPI_EXPORTED void mlirRegisterEmbPasses(void);

/* Element types (values match emb::DType). */
typedef enum {
  EMB_F32 = 0,
  EMB_F64 = 1,
  EMB_F16 = 2,
  EMB_BF16 = 3,
  EMB_I32 = 4,
  EMB_I64 = 5,
  EMB_U8 = 6 /* the bytes of a quantised table */
} EmbDType;

/* EMB_SQRTN: the weighted sum over sqrt(sum of squared weights), TensorFlow's
 * combiner; EMB_MEAN with per_sample_weights is the weighted mean
 * (docs/semantics.md §6.1). */
typedef enum {
  EMB_SUM = 0,
  EMB_MEAN = 1,
  EMB_MAX = 2,
  EMB_SQRTN = 3,
  /* No pooling (a sequence table: its L rows side by side); only for the
   * tables of embEmbeddingBagTables (docs/semantics.md §6.3). */
  EMB_NONE = 4
} EmbBagMode;

/* A view of contiguous row-major memory. */
typedef struct {
  void *data;
  EmbDType dtype;
  int32_t rank;
  const int64_t *shape;
} EmbTensor;

typedef struct EmbEngine EmbEngine;

/* An engine with `threads` threads (0: all) and a kernel disk cache in
 * `cacheDir` (NULL: the default; "" : memory only). */
MLIR_CAPI_EXPORTED EmbEngine *embEngineCreate(int threads,
                                              const char *cacheDir);

/* The caller's executor (emb::ParallelFor): run `body(bodyContext, begin,
 * end)` on contiguous ranges that cover [0, n) exactly once, each at least
 * `grain` long unless n is shorter, on any threads, and return when all
 * have run. The results do not depend on the ranges. */
typedef void (*EmbRangeBody)(void *bodyContext, int64_t begin, int64_t end);
typedef void (*EmbParallelFor)(void *userData, int64_t n, int64_t grain,
                               EmbRangeBody body, void *bodyContext);

/* An engine that runs its parallel work through `parallelFor` (called with
 * `userData`) instead of a pool of its own: the caller's thread pool. */
MLIR_CAPI_EXPORTED EmbEngine *
embEngineCreateWithExecutor(EmbParallelFor parallelFor, void *userData,
                            const char *cacheDir);
MLIR_CAPI_EXPORTED void embEngineDestroy(EmbEngine *engine);

/* Each call returns 0 on success; otherwise a non-zero value, nothing
 * written, and the message in `error` (truncated to `errorSize` bytes).
 * `paddingIdx` is ignored unless `hasPaddingIdx`. */
MLIR_CAPI_EXPORTED int embEmbedding(EmbEngine *engine, EmbTensor indices,
                                    EmbTensor weight, EmbTensor out,
                                    int hasPaddingIdx, int64_t paddingIdx,
                                    char *error, size_t errorSize);

/* `offsets` and `perSampleWeights` may be NULL (2-D indices; no weights).
 * perSampleWeights weigh every mode but EMB_MAX. */
MLIR_CAPI_EXPORTED int embEmbeddingBag(EmbEngine *engine, EmbTensor indices,
                                       EmbTensor weight,
                                       const EmbTensor *offsets, EmbTensor out,
                                       EmbBagMode mode, int includeLastOffset,
                                       int hasPaddingIdx, int64_t paddingIdx,
                                       const EmbTensor *perSampleWeights,
                                       char *error, size_t errorSize);

/* One table of embEmbeddingBagTables. An EMB_NONE (sequence) table's bag
 * length L is `sequenceLength` when `hasSequenceLength`, else its first
 * bag's (0 without bags); on a GPU without index validation the offsets
 * are not read and the length must be given. */
typedef struct {
  int64_t numEmbeddings, embeddingDim;
  EmbBagMode mode;
  int hasPaddingIdx;
  int64_t paddingIdx;
  int hasSequenceLength;
  int64_t sequenceLength;
} EmbTable;

/* Many tables in one call (docs/semantics.md §6.3): `weights` (1-D) holds
 * every table, flat, one after another; `indices` (1-D) every table's
 * indices concatenated; `offsets` (T * B + 1, table-major) the bags; `out`
 * [B, sum of the tables' columns] of the weights' dtype: D, or for an
 * EMB_NONE (sequence) table, whose bags all have one length L (EmbTable),
 * L * D (its rows side by side); `perSampleWeights` (or NULL) the indices'
 * shape. (emb::Engine::embeddingBagTables.) */
MLIR_CAPI_EXPORTED int
embEmbeddingBagTables(EmbEngine *engine, EmbTensor indices, EmbTensor weights,
                      const EmbTable *tables, int numTables, EmbTensor offsets,
                      EmbTensor out, const EmbTensor *perSampleWeights,
                      char *error, size_t errorSize);

/* Row-wise quantised tables (docs/semantics.md §6.2): FBGEMM's fused rows,
 * as torch's embedding_bag_byte_prepack / _4bit_prepack make them. */
typedef enum { EMB_INT8 = 1, EMB_INT4 = 2 } EmbQuantization;

/* embedding_bag over `table`, EMB_U8 [V, quantised row bytes of D]
 * (D + 8 for EMB_INT8, ceil(D/2) + 4 for EMB_INT4); `out` is [B, D] EMB_F32
 * or EMB_F16 (D is out's); `perSampleWeights` (or NULL) has out's dtype.
 * Every mode, include_last_offset and padding_idx as in embEmbeddingBag. */
MLIR_CAPI_EXPORTED int
embEmbeddingBagQuantized(EmbEngine *engine, EmbTensor indices, EmbTensor table,
                         EmbQuantization format, const EmbTensor *offsets,
                         EmbTensor out, EmbBagMode mode, int includeLastOffset,
                         int hasPaddingIdx, int64_t paddingIdx,
                         const EmbTensor *perSampleWeights, char *error,
                         size_t errorSize);

/* The optimizer of a fused backward step (docs/semantics.md §6.4; values
 * match emb::Optimizer) and its hyper-parameters (emb::OptimizerOptions). */
typedef enum {
  EMB_SGD = 0,
  EMB_ADAGRAD = 1,
  EMB_ROWWISE_ADAGRAD = 2,
  EMB_ADAM = 3
} EmbOptimizer;

typedef struct {
  EmbOptimizer optimizer;
  double lr, eps, weightDecay, beta1, beta2;
  int64_t step; /* adam: t >= 1 */
} EmbOptimizerOptions;

/* The weight gradient of embedding_bag fused with an optimizer step: the
 * rows of `weight` [V, D] the gradient `grad` [B, D] touches are updated in
 * place, with `states` (`numStates` tensors: none for EMB_SGD; the sum of
 * squares [V, D] for EMB_ADAGRAD, [V] for EMB_ROWWISE_ADAGRAD; exp_avg and
 * exp_avg_sq [V, D] for EMB_ADAM; EMB_F32, EMB_F64 for an f64 weight). The
 * bag structure and options are the forward's; `maxIndices` is the
 * forward's argmax for EMB_MAX, else NULL. A lookup is the EMB_SUM bag of
 * 2-D indices [N, 1]. (emb::Engine::embeddingBagUpdate.) */
MLIR_CAPI_EXPORTED int embEmbeddingBagUpdate(
    EmbEngine *engine, EmbTensor grad, EmbTensor indices,
    const EmbTensor *offsets, EmbTensor weight, const EmbTensor *states,
    int numStates, const EmbOptimizerOptions *optimizer, EmbBagMode mode,
    int includeLastOffset, int hasPaddingIdx, int64_t paddingIdx,
    int scaleGradByFreq, const EmbTensor *perSampleWeights,
    const EmbTensor *maxIndices, char *error, size_t errorSize);

/* Zero-filled memory for a table (or a large output) of `bytes`, 64-byte
 * aligned; NULL when it cannot be had. With `hugePages` non-zero and bytes
 * >= 2 MiB: 2 MiB aligned, advised MADV_HUGEPAGE before the first touch,
 * so that Linux backs it with transparent huge pages (fewer TLB misses in
 * random-row gathers). Free it with embFreeTable and the same `bytes`.
 * (emb::allocateTable, emb/Runtime/TableMemory.h.) */
MLIR_CAPI_EXPORTED void *embAllocateTable(size_t bytes, int hugePages);
MLIR_CAPI_EXPORTED void embFreeTable(void *table, size_t bytes);

/* 1 when the mapping that holds `p` is advised MADV_HUGEPAGE (it reads
 * /proc/self/smaps: for tests and diagnostics), else 0. */
MLIR_CAPI_EXPORTED int embHugePagesAdvised(const void *p);

#ifdef __cplusplus
}
#endif

#endif /* EMB_C_EMB_H */
