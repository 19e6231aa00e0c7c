//===- KernelSpec.cpp - stable names of specialised kernels ---------------===//

#include "emb/JIT/KernelSpec.h"

#include <cstdio>

namespace emb {

std::string KernelSpec::str() const {
  std::string s = opKindName(op);
  s += ":";
  s += targetName(target);
  if (target == Target::gpu_emulated && traceMemory)
    s += "-traced";
  if (target == Target::nvptx) {
    s += "-" + chip;
    if (ptx)
      s += "-ptx" + std::to_string(ptx);
  }
  s += ":w=";
  s += dtypeName(weight);
  s += ":i=";
  s += dtypeName(indices);
  bool bag = op == OpKind::embedding_bag ||
             op == OpKind::embedding_bag_backward ||
             op == OpKind::embedding_bag_psw_backward ||
             op == OpKind::embedding_bag_sparse_backward ||
             op == OpKind::embedding_bag_update;
  bool sparse = op == OpKind::embedding_sparse_backward ||
                op == OpKind::embedding_bag_sparse_backward;
  bool manyTables = op == OpKind::embedding_bag_tables ||
                    op == OpKind::embedding_bag_tables_update;
  bool update = op == OpKind::embedding_bag_update ||
                op == OpKind::embedding_bag_tables_update;
  bool backward = op == OpKind::embedding_backward ||
                  op == OpKind::embedding_bag_backward || sparse ||
                  op == OpKind::embedding_bag_update;
  if ((bag && !twoD) || manyTables) {
    s += ":o=";
    s += dtypeName(offsets);
  }
  s += ":D=" + std::to_string(dim);
  if (bag) {
    s += ":mode=";
    s += bagModeName(mode);
    s += twoD ? ":2d" : ":1d";
    if (perSampleWeights)
      s += ":psw";
    if (includeLastOffset && !twoD)
      s += ":last";
    if (maxIndices)
      s += ":argmax";
    if (quant != Quantization::none) {
      s += ":q=";
      s += quantizationName(quant);
    }
  }
  if (manyTables) {
    s += perSampleWeights ? ":psw:tables=" : ":tables=";
    for (const TableSpec &t : tables) {
      s += std::to_string(t.rows) + "x" + std::to_string(t.dim) + "-" +
           bagModeName(t.mode);
      if (t.mode == BagMode::none)
        s += std::to_string(t.sequenceLength);
      if (t.paddingIdx >= 0)
        s += "-pad" + std::to_string(t.paddingIdx);
      s += ",";
    }
  }
  if (backward) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), ":V=%lld:scale=%a",
                  static_cast<long long>(numEmbeddings), gradScale);
    s += buf;
    if (scaleGradByFreq)
      s += ":freq";
    if (sparse)
      s += coalesced ? ":coalesced" : ":sparse";
    else if (deterministic)
      s += ":det";
  }
  if (update) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), ":opt=%s:wd=%a", optimizerName(optimizer),
                  weightDecay);
    s += buf;
    if (optimizer != Optimizer::sgd) {
      std::snprintf(buf, sizeof(buf), ":eps=%a", eps);
      s += buf;
    }
    if (optimizer == Optimizer::adam) {
      std::snprintf(buf, sizeof(buf), ":b1=%a:b2=%a", beta1, beta2);
      s += buf;
    }
  }
  if (op != OpKind::renorm && paddingIdx >= 0) {
    s += ":pad=" + std::to_string(paddingIdx);
    if (zeroPadding && op == OpKind::embedding)
      s += ":zero";
  }
  if (op == OpKind::renorm) {
    char buf[64];
    // %a prints the exact bits: two specs differ iff their doubles do.
    std::snprintf(buf, sizeof(buf), ":max_norm=%a:p=%a", maxNorm, normType);
    s += buf;
  }
  return s;
}

uint64_t KernelSpec::hash() const {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : str()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string KernelSpec::symbolName() const {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "emb_%016llx",
                static_cast<unsigned long long>(hash()));
  return buf;
}

} // namespace emb
