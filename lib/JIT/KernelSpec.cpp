//===- KernelSpec.cpp - stable names of specialised kernels ---------------===//

#include "emb/JIT/KernelSpec.h"

#include <cstdio>

namespace emb {

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::f32:
    return "f32";
  case DType::f64:
    return "f64";
  case DType::f16:
    return "f16";
  case DType::bf16:
    return "bf16";
  case DType::i32:
    return "i32";
  case DType::i64:
    return "i64";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32,
                  DType::i64})
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::f64:
  case DType::i64:
    return 8;
  case DType::f32:
  case DType::i32:
    return 4;
  case DType::f16:
  case DType::bf16:
    return 2;
  }
  return 0;
}

const char *bagModeName(BagMode mode) {
  switch (mode) {
  case BagMode::sum:
    return "sum";
  case BagMode::mean:
    return "mean";
  case BagMode::max:
    return "max";
  }
  return "?";
}

const char *opKindName(OpKind op) {
  switch (op) {
  case OpKind::embedding:
    return "embedding";
  case OpKind::embedding_bag:
    return "embedding_bag";
  case OpKind::renorm:
    return "renorm";
  case OpKind::embedding_backward:
    return "embedding_backward";
  case OpKind::embedding_bag_backward:
    return "embedding_bag_backward";
  case OpKind::embedding_bag_psw_backward:
    return "embedding_bag_psw_backward";
  case OpKind::embedding_sparse_backward:
    return "embedding_sparse_backward";
  case OpKind::embedding_bag_sparse_backward:
    return "embedding_bag_sparse_backward";
  }
  return "?";
}

const char *targetName(Target target) {
  switch (target) {
  case Target::host:
    return "host";
  case Target::gpu_emulated:
    return "gpu-emulated";
  case Target::nvptx:
    return "nvptx";
  }
  return "?";
}

std::string KernelSpec::str() const {
  std::string s = opKindName(op);
  s += ":";
  s += targetName(target);
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
             op == OpKind::embedding_bag_sparse_backward;
  bool sparse = op == OpKind::embedding_sparse_backward ||
                op == OpKind::embedding_bag_sparse_backward;
  bool backward = op == OpKind::embedding_backward ||
                  op == OpKind::embedding_bag_backward || sparse;
  if (bag && !twoD) {
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
