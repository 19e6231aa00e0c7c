/*===- capi_test.c - the C API, from C ------------------------------------===*\
|* Registers the dialects through the C API, parses and verifies an emb     *|
|* program, runs emb-cpu-pipeline, then calls the JIT on host buffers and   *|
|* checks the results and an error. Exit status 0 and "capi: ok" on success. *|
\*===----------------------------------------------------------------------===*/

#include "emb-c/Emb.h"
#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "capi: FAILED: %s\n", what);                             \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

static const char *kProgram =
    "func.func @bag(%w: memref<?x4xf32>, %idx: memref<?xi64>, %off: "
    "memref<?xi64>, %out: memref<?x4xf32>) attributes "
    "{llvm.emit_c_interface} {\n"
    "  %tw = bufferization.to_tensor %w restrict : memref<?x4xf32> to "
    "tensor<?x4xf32>\n"
    "  %ti = bufferization.to_tensor %idx restrict : memref<?xi64> to "
    "tensor<?xi64>\n"
    "  %to = bufferization.to_tensor %off restrict : memref<?xi64> to "
    "tensor<?xi64>\n"
    "  %r = emb.bag sum %tw[%ti] offsets(%to : tensor<?xi64>) : "
    "tensor<?x4xf32>[tensor<?xi64>] -> tensor<?x4xf32>\n"
    "  bufferization.materialize_in_destination %r in restrict writable %out "
    ": (tensor<?x4xf32>, memref<?x4xf32>) -> ()\n"
    "  return\n"
    "}\n";

static void countEmbOps(MlirOperation op, int *count) {
  MlirIdentifier name = mlirOperationGetName(op);
  MlirStringRef s = mlirIdentifierStr(name);
  if (s.length > 4 && strncmp(s.data, "emb.", 4) == 0)
    ++*count;
  for (intptr_t r = 0; r < mlirOperationGetNumRegions(op); ++r) {
    MlirRegion region = mlirOperationGetRegion(op, r);
    for (MlirBlock b = mlirRegionGetFirstBlock(region); !mlirBlockIsNull(b);
         b = mlirBlockGetNextInRegion(b))
      for (MlirOperation o = mlirBlockGetFirstOperation(b);
           !mlirOperationIsNull(o); o = mlirOperationGetNextInBlock(o))
        countEmbOps(o, count);
  }
}

/* A caller's executor for the test: runs the ranges one after another,
 * each `grain` long (the last one shorter), counting them. */
struct Ranges {
  int calls, ranges;
};
static void serialInRanges(void *userData, int64_t n, int64_t grain,
                           EmbRangeBody body, void *bodyContext) {
  struct Ranges *r = userData;
  ++r->calls;
  for (int64_t b = 0; b < n; b += grain) {
    ++r->ranges;
    body(bodyContext, b, b + grain < n ? b + grain : n);
  }
}

int main(void) {
  /* The dialect handle, MLIR's way. */
  MlirDialectHandle handle = mlirGetDialectHandle__emb__();
  MlirStringRef ns = mlirDialectHandleGetNamespace(handle);
  CHECK(ns.length == 3 && strncmp(ns.data, "emb", 3) == 0, "namespace");

  MlirContext ctx = mlirContextCreateWithThreading(false);
  MlirDialectRegistry registry = mlirDialectRegistryCreate();
  mlirEmbRegisterAllDialects(registry);
  mlirContextAppendDialectRegistry(ctx, registry);
  mlirDialectRegistryDestroy(registry);
  MlirDialect emb = mlirDialectHandleLoadDialect(handle, ctx);
  CHECK(!mlirDialectIsNull(emb), "load the emb dialect");

  MlirModule module =
      mlirModuleCreateParse(ctx, mlirStringRefCreateFromCString(kProgram));
  CHECK(!mlirModuleIsNull(module), "parse the emb program");
  if (mlirModuleIsNull(module))
    return 1;
  MlirOperation op = mlirModuleGetOperation(module);
  CHECK(mlirOperationVerify(op), "verify");
  int before = 0;
  countEmbOps(op, &before);
  CHECK(before == 1, "one emb op before lowering");

  mlirRegisterEmbPasses();
  MlirPassManager pm = mlirPassManagerCreate(ctx);
  MlirLogicalResult parsed = mlirParsePassPipeline(
      mlirPassManagerGetAsOpPassManager(pm),
      mlirStringRefCreateFromCString("builtin.module(emb-cpu-pipeline)"), NULL,
      NULL);
  CHECK(mlirLogicalResultIsSuccess(parsed), "parse the pass pipeline");
  CHECK(mlirLogicalResultIsSuccess(mlirPassManagerRunOnOp(pm, op)),
        "run emb-cpu-pipeline");
  int after = 0;
  countEmbOps(op, &after);
  CHECK(after == 0, "no emb op after lowering");
  mlirPassManagerDestroy(pm);
  mlirModuleDestroy(module);
  mlirContextDestroy(ctx);

  /* The JIT from C: embedding_bag(mode=sum, sqrtn) and embedding. */
  float table[12] = {1, 2, 3, 4, 10, 20, 30, 40, -1, -2, -3, -4};
  int64_t ids[3] = {0, 1, 2}, offsets[2] = {0, 2};
  float out[8];
  int64_t wShape[2] = {3, 4}, xShape[1] = {3}, oShape[1] = {2},
          rShape[2] = {2, 4};
  EmbTensor w = {table, EMB_F32, 2, wShape}, x = {ids, EMB_I64, 1, xShape},
            o = {offsets, EMB_I64, 1, oShape}, r = {out, EMB_F32, 2, rShape};
  char error[256] = "";
  EmbEngine *engine = embEngineCreate(1, "");
  int rc = embEmbeddingBag(engine, x, w, &o, r, EMB_SUM, 0, 0, 0, NULL, error,
                           sizeof(error));
  CHECK(rc == 0, error);
  const float want[8] = {11, 22, 33, 44, -1, -2, -3, -4};
  for (int i = 0; i < 8; ++i)
    CHECK(fabsf(out[i] - want[i]) < 1e-6f, "embedding_bag value");

  /* sqrtn with weights (docs/semantics.md §6.1): bag 0 is (3 * row 0 +
   * 4 * row 1) / 5, bag 1 is row 2 * 2 / 2. */
  float weights[3] = {3, 4, 2};
  EmbTensor p = {weights, EMB_F32, 1, xShape};
  rc = embEmbeddingBag(engine, x, w, &o, r, EMB_SQRTN, 0, 0, 0, &p, error,
                       sizeof(error));
  CHECK(rc == 0, error);
  const float wantSqrtn[8] = {43 / 5.f, 86 / 5.f, 129 / 5.f, 172 / 5.f,
                              -1,       -2,       -3,        -4};
  for (int i = 0; i < 8; ++i)
    CHECK(fabsf(out[i] - wantSqrtn[i]) < 1e-5f, "sqrtn value");

  /* An int8 table of 3 rows of D = 4 (q, then scale 0.5 and bias -1 as
   * f32): row r is q * 0.5 - 1. */
  unsigned char packed[3][12];
  const float scaleBias[2] = {0.5f, -1.0f};
  for (int r = 0; r < 3; ++r) {
    for (int d = 0; d < 4; ++d)
      packed[r][d] = (unsigned char)(10 * r + d);
    memcpy(&packed[r][4], scaleBias, sizeof(scaleBias));
  }
  int64_t qShape[2] = {3, 12};
  EmbTensor q = {packed, EMB_U8, 2, qShape};
  rc = embEmbeddingBagQuantized(engine, x, q, EMB_INT8, &o, r, EMB_SUM, 0, 0,
                                0, NULL, error, sizeof(error));
  CHECK(rc == 0, error);
  /* bag 0: rows 0 and 1, bag 1: row 2 */
  const float wantQ[8] = {3, 4, 5, 6, 9, 9.5f, 10, 10.5f};
  for (int i = 0; i < 8; ++i)
    CHECK(fabsf(out[i] - wantQ[i]) < 1e-6f, "quantised bag value");
  rc = embEmbeddingBagQuantized(engine, x, q, EMB_INT4, &o, r, EMB_SUM, 0, 0,
                                0, NULL, error, sizeof(error));
  CHECK(rc != 0 && strstr(error, "'table' rows are 12 bytes") != NULL,
        "a table of the wrong row size is an error");

  /* Two tables in one call, one bag each: table 0 is the 3 x 4 table above
   * (sum of rows 0 and 2), table 1 a 2 x 2 table (max of its rows). */
  float both[12 + 4] = {1, 2, 3, 4, 10, 20, 30, 40, -1, -2, -3, -4,
                        5, -6, -7, 8};
  int64_t tIds[4] = {0, 2, 0, 1}, tOffs[3] = {0, 2, 4};
  int64_t bothShape[1] = {16}, tIdShape[1] = {4}, tOffShape[1] = {3},
          tOutShape[2] = {1, 6};
  float tOut[6];
  EmbTensor bw = {both, EMB_F32, 1, bothShape},
            tx = {tIds, EMB_I64, 1, tIdShape},
            to = {tOffs, EMB_I64, 1, tOffShape},
            ty = {tOut, EMB_F32, 2, tOutShape};
  EmbTable tables[2] = {{3, 4, EMB_SUM, 0, 0, 0, 0},
                        {2, 2, EMB_MAX, 0, 0, 0, 0}};
  rc = embEmbeddingBagTables(engine, tx, bw, tables, 2, to, ty, NULL, error,
                             sizeof(error));
  CHECK(rc == 0, error);
  const float wantT[6] = {0, 0, 0, 0, 5, 8};
  for (int i = 0; i < 6; ++i)
    CHECK(fabsf(tOut[i] - wantT[i]) < 1e-6f, "many-table bag value");
  tables[1].numEmbeddings = 1; /* index 1 of table 1 is now out of range */
  rc = embEmbeddingBagTables(engine, tx, bw, tables, 2, to, ty, NULL, error,
                             sizeof(error));
  CHECK(rc != 0 && strstr(error, "'weights' has 16 elements") != NULL,
        "the tables must fill the weights");
  /* Table 1 as a sequence table (EMB_NONE): its bag's two rows side by
   * side, 4 + 2 * 2 columns. */
  float sOut[8];
  int64_t sOutShape[2] = {1, 8};
  EmbTensor sy = {sOut, EMB_F32, 2, sOutShape};
  tables[1].numEmbeddings = 2;
  tables[1].mode = EMB_NONE;
  rc = embEmbeddingBagTables(engine, tx, bw, tables, 2, to, sy, NULL, error,
                             sizeof(error));
  CHECK(rc == 0, error);
  const float wantS[8] = {0, 0, 0, 0, 5, -6, -7, 8};
  for (int i = 0; i < 8; ++i)
    CHECK(fabsf(sOut[i] - wantS[i]) < 1e-6f, "sequence table value");
  tables[1].hasSequenceLength = 1; /* a length its bag does not have */
  tables[1].sequenceLength = 3;
  rc = embEmbeddingBagTables(engine, tx, bw, tables, 2, to, sy, NULL, error,
                             sizeof(error));
  CHECK(rc != 0 && strstr(error, "bag 0 has 2 entries") != NULL,
        "a sequence table's bags have its length");
  /* EMB_NONE is for the tables of a many-table call only. */
  rc = embEmbeddingBag(engine, x, w, &o, r, EMB_NONE, 0, 0, 0, NULL, error,
                       sizeof(error));
  CHECK(rc != 0 && strstr(error, "mode 'none' (no pooling)") != NULL,
        "a single table refuses mode none");

  /* The fused optimizer step: one bag (rows 0 and 2) with gradient 1, SGD
   * with lr 0.5 moves both rows by -0.5 and leaves row 1; row-wise Adagrad
   * checks its state's shape before anything is written. */
  float trained[12] = {1, 2, 3, 4, 10, 20, 30, 40, -1, -2, -3, -4};
  float ones[4] = {1, 1, 1, 1}, rowState[3] = {0, 0, 0};
  int64_t uIds[2] = {0, 2}, uOffs[1] = {0};
  int64_t uwShape[2] = {3, 4}, ugShape[2] = {1, 4}, uxShape[1] = {2},
          uoShape[1] = {1}, badStateShape[1] = {2};
  EmbTensor uw = {trained, EMB_F32, 2, uwShape},
            ug = {ones, EMB_F32, 2, ugShape}, ux = {uIds, EMB_I64, 1, uxShape},
            uo = {uOffs, EMB_I64, 1, uoShape},
            badState = {rowState, EMB_F32, 1, badStateShape};
  EmbOptimizerOptions sgd = {EMB_SGD, 0.5, 1e-8, 0.0, 0.9, 0.999, 1};
  rc = embEmbeddingBagUpdate(engine, ug, ux, &uo, uw, NULL, 0, &sgd, EMB_SUM,
                             0, 0, 0, 0, NULL, NULL, error, sizeof(error));
  CHECK(rc == 0, error);
  const float wantU[12] = {0.5f, 1.5f, 2.5f, 3.5f, 10, 20, 30, 40,
                           -1.5f, -2.5f, -3.5f, -4.5f};
  for (int i = 0; i < 12; ++i)
    CHECK(trained[i] == wantU[i], "fused SGD step value");
  EmbOptimizerOptions rowwise = {EMB_ROWWISE_ADAGRAD, 0.5, 1e-8, 0.0, 0.9,
                                 0.999, 1};
  rc = embEmbeddingBagUpdate(engine, ug, ux, &uo, uw, &badState, 1, &rowwise,
                             EMB_SUM, 0, 0, 0, 0, NULL, NULL, error,
                             sizeof(error));
  CHECK(rc != 0 && strstr(error, "'sum' must be [3] f32") != NULL,
        "a state of the wrong shape is an error");
  CHECK(trained[0] == 0.5f, "nothing written after an error");

  float rows[12];
  int64_t lShape[2] = {3, 4};
  EmbTensor l = {rows, EMB_F32, 2, lShape};
  rc = embEmbedding(engine, x, w, l, 0, 0, error, sizeof(error));
  CHECK(rc == 0, error);
  for (int i = 0; i < 12; ++i)
    CHECK(rows[i] == table[i], "embedding value");

  ids[2] = 5;
  rc = embEmbeddingBag(engine, x, w, &o, r, EMB_SUM, 0, 0, 0, NULL, error,
                       sizeof(error));
  CHECK(rc != 0, "an out-of-range index is an error");
  CHECK(strcmp(error, "index 5 at position 2 is out of range [0, 3)") == 0,
        "the error message");
  ids[2] = 2;

  /* Values C lets through: an enum out of its range (read as a raw integer,
   * never loaded as the enum), a rank without a shape (was read as 0-D). */
  int badValue = 42;
  EmbTensor badDtype = w;
  memcpy(&badDtype.dtype, &badValue, sizeof(badValue));
  rc = embEmbedding(engine, x, badDtype, l, 0, 0, error, sizeof(error));
  CHECK(rc != 0 && strstr(error, "invalid dtype 42") != NULL,
        "an out-of-range dtype is an error");
  EmbBagMode badMode;
  memcpy(&badMode, &badValue, sizeof(badValue));
  rc = embEmbeddingBag(engine, x, w, &o, r, badMode, 0, 0, 0, NULL, error,
                       sizeof(error));
  CHECK(rc != 0 && strstr(error, "invalid bag mode 42") != NULL,
        "an out-of-range bag mode is an error");
  EmbTensor noShape = {ids, EMB_I64, 1, NULL};
  rc = embEmbedding(engine, noShape, w, l, 0, 0, error, sizeof(error));
  CHECK(rc != 0 && strstr(error, "rank 1 but no shape") != NULL,
        "a rank without a shape is an error");

  /* The caller's executor: every range of a split call runs through it
   * (here serially, in small ranges), and the values are the own pool's. */
  enum { kBags = 1 << 17 };
  int64_t *manyIds = malloc(sizeof(int64_t) * kBags);
  int64_t *manyOffsets = malloc(sizeof(int64_t) * kBags);
  float *byPool = malloc(sizeof(float) * kBags * 4);
  float *byExecutor = malloc(sizeof(float) * kBags * 4);
  CHECK(manyIds && manyOffsets && byPool && byExecutor, "allocation");
  for (int64_t i = 0; i < kBags; ++i) {
    manyIds[i] = (i * 7) % 3;
    manyOffsets[i] = i;
  }
  int64_t nShape[1] = {kBags}, mShape[2] = {kBags, 4};
  EmbTensor mx = {manyIds, EMB_I64, 1, nShape},
            mo = {manyOffsets, EMB_I64, 1, nShape},
            byPoolOut = {byPool, EMB_F32, 2, mShape},
            byExecutorOut = {byExecutor, EMB_F32, 2, mShape};
  rc = embEmbeddingBag(engine, mx, w, &mo, byPoolOut, EMB_SUM, 0, 0, 0, NULL,
                       error, sizeof(error));
  CHECK(rc == 0, error);
  embEngineDestroy(engine);
  struct Ranges ranges = {0, 0};
  engine = embEngineCreateWithExecutor(serialInRanges, &ranges, "");
  CHECK(engine != NULL, "an engine on the caller's executor");
  rc = embEmbeddingBag(engine, mx, w, &mo, byExecutorOut, EMB_SUM, 0, 0, 0,
                       NULL, error, sizeof(error));
  CHECK(rc == 0, error);
  CHECK(ranges.calls >= 1 && ranges.ranges > 1,
        "the call was split through the executor");
  CHECK(memcmp(byPool, byExecutor, sizeof(float) * kBags * 4) == 0,
        "the executor's values are the pool's, bit for bit");
  CHECK(embEngineCreateWithExecutor(NULL, NULL, "") == NULL,
        "no executor, no engine");
  free(manyIds);
  free(manyOffsets);
  free(byPool);
  free(byExecutor);
  embEngineDestroy(engine);

  /* Table memory: 2 MiB aligned, advised for huge pages (where the kernel
   * has them), zero-filled; the JIT gathers from it like any buffer. */
  enum { kRows = 4096, kDim = 256 };
  size_t tableBytes = sizeof(float) * kRows * kDim;
  float *big = embAllocateTable(tableBytes, 1);
  CHECK(big != NULL, "embAllocateTable");
  if (big) {
    CHECK((uintptr_t)big % (2u << 20) == 0, "a table is 2 MiB aligned");
    FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (thp) {
      fclose(thp);
      CHECK(embHugePagesAdvised(big), "a table is advised MADV_HUGEPAGE");
    }
    int zero = 1;
    for (size_t i = 0; i < (size_t)kRows * kDim; ++i)
      zero &= big[i] == 0.0f;
    CHECK(zero, "a table is zero-filled");
    for (size_t i = 0; i < (size_t)kRows * kDim; ++i)
      big[i] = (float)(i / kDim);
    int64_t bigShape[2] = {kRows, kDim}, pick[2] = {4095, 7},
            pickShape[1] = {2}, gotShape[2] = {2, kDim};
    float got[2 * kDim];
    EmbTensor bw = {big, EMB_F32, 2, bigShape},
              bx = {pick, EMB_I64, 1, pickShape},
              bo = {got, EMB_F32, 2, gotShape};
    engine = embEngineCreate(1, "");
    rc = embEmbedding(engine, bx, bw, bo, 0, 0, error, sizeof(error));
    CHECK(rc == 0, error);
    CHECK(got[0] == 4095.0f && got[kDim] == 7.0f, "a gather from a table");
    embEngineDestroy(engine);
    embFreeTable(big, tableBytes);
  }
  void *small = embAllocateTable(100, 1);
  CHECK(small != NULL && (uintptr_t)small % 64 == 0,
        "a small table is 64-byte aligned");
  CHECK(!embHugePagesAdvised(NULL), "nothing maps NULL");
  embFreeTable(small, 100);

  if (failures)
    return 1;
  printf("capi: ok\n");
  return 0;
}
