//===- Numeric.h - element conversions for the host side --------*- C++ -*-===//
//
// Reading and writing elements of any DType as double / int64, with
// round-to-nearest-even for f16 and bf16. Used by the reference, the tests
// and emb-run; the kernels do their own conversions in generated code.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_NUMERIC_H
#define EMB_RUNTIME_NUMERIC_H

#include "emb/Core/Types.h"

#include <cstdint>
#include <cstring>

namespace emb {

inline float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((112 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) // inf or nan
    return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0);
  if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return sign | 0x7c00u;
  if (absx < 0x38800000u) { // subnormal half (or zero)
    if (absx < 0x33000000u)
      return sign;
    uint32_t e = absx >> 23, man = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;
    uint32_t half = man >> shift, rest = man & ((1u << shift) - 1),
             mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1)))
      ++half;
    return sign | half;
  }
  uint32_t half = ((absx >> 13) - (112u << 10)), rest = absx & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    ++half;
  return sign | half;
}

inline float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (x >> 16) | 0x40; // quiet nan
  x += 0x7fff + ((x >> 16) & 1);
  return x >> 16;
}

/// Element `i` of `data` (of type `dtype`) as a double.
inline double loadDouble(const void *data, DType dtype, int64_t i) {
  switch (dtype) {
  case DType::f32:
    return static_cast<const float *>(data)[i];
  case DType::f64:
    return static_cast<const double *>(data)[i];
  case DType::f16:
    return halfToFloat(static_cast<const uint16_t *>(data)[i]);
  case DType::bf16:
    return bf16ToFloat(static_cast<const uint16_t *>(data)[i]);
  case DType::i32:
    return static_cast<const int32_t *>(data)[i];
  case DType::i64:
    return static_cast<double>(static_cast<const int64_t *>(data)[i]);
  case DType::u8:
    return static_cast<const uint8_t *>(data)[i];
  }
  return 0;
}

/// Element `i` of an integer buffer as int64.
inline int64_t loadInt(const void *data, DType dtype, int64_t i) {
  return dtype == DType::i32 ? static_cast<const int32_t *>(data)[i]
                             : static_cast<const int64_t *>(data)[i];
}

/// Stores `v` rounded to `dtype` (f16/bf16 through f32, as the kernels do).
inline void storeDouble(void *data, DType dtype, int64_t i, double v) {
  switch (dtype) {
  case DType::f32:
    static_cast<float *>(data)[i] = static_cast<float>(v);
    break;
  case DType::f64:
    static_cast<double *>(data)[i] = v;
    break;
  case DType::f16:
    static_cast<uint16_t *>(data)[i] = floatToHalf(static_cast<float>(v));
    break;
  case DType::bf16:
    static_cast<uint16_t *>(data)[i] = floatToBf16(static_cast<float>(v));
    break;
  case DType::i32:
    static_cast<int32_t *>(data)[i] = static_cast<int32_t>(v);
    break;
  case DType::i64:
    static_cast<int64_t *>(data)[i] = static_cast<int64_t>(v);
    break;
  case DType::u8:
    static_cast<uint8_t *>(data)[i] = static_cast<uint8_t>(v);
    break;
  }
}

} // namespace emb

#endif // EMB_RUNTIME_NUMERIC_H
