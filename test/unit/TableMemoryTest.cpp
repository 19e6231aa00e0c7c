//===- TableMemoryTest.cpp - tables on transparent huge pages -------------===//
//
// allocateTable's contract: 2 MiB aligned and advised MADV_HUGEPAGE (as
// /proc/self/smaps shows it) from 2 MiB up, 64-byte aligned below or
// without huge pages, zero-filled, and freeTable gives every mapping back.
// Whether the kernel then backs the range with huge pages depends on its
// free memory: reported, not asserted.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/TableMemory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace emb;

namespace {

bool isAligned(const void *p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

bool allZero(const void *p, size_t bytes) {
  const auto *c = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < bytes; ++i)
    if (c[i])
      return false;
  return true;
}

/// THP compiled into the kernel (madvise(MADV_HUGEPAGE) is EINVAL without).
bool kernelHasTHP() {
  struct stat s;
  return stat("/sys/kernel/mm/transparent_hugepage", &s) == 0;
}

size_t countMappings() {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    ++n;
  return n;
}

TEST(TableMemory, LargeIsHugePageAlignedAndAdvised) {
  if (!kernelHasTHP())
    GTEST_SKIP() << "no transparent huge pages in this kernel";
  size_t bytes = 3 * kHugePageBytes + 100; // not a multiple: rounded up
  auto *p = static_cast<char *>(allocateTable(bytes));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(isAligned(p, kHugePageBytes));
  EXPECT_TRUE(hugePagesAdvised(p));
  EXPECT_TRUE(hugePagesAdvised(p + bytes - 1));
  EXPECT_TRUE(allZero(p, bytes));
  std::memset(p, 0x5a, bytes);
  uint64_t backed = hugePageBytesBacking(p);
  EXPECT_EQ(backed % kHugePageBytes, 0u);
  EXPECT_LE(backed, 4 * kHugePageBytes);
  std::printf("backed by huge pages after the first touch: %llu of %zu bytes\n",
              static_cast<unsigned long long>(backed), bytes);
  freeTable(p, bytes);
}

TEST(TableMemory, ExactlyOneHugePage) {
  if (!kernelHasTHP())
    GTEST_SKIP() << "no transparent huge pages in this kernel";
  auto *p = static_cast<char *>(allocateTable(kHugePageBytes));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(isAligned(p, kHugePageBytes));
  EXPECT_TRUE(hugePagesAdvised(p));
  // The trimmed mapping ends where the table does.
  EXPECT_FALSE(hugePagesAdvised(p + kHugePageBytes));
  freeTable(p, kHugePageBytes);
}

TEST(TableMemory, LargeWithoutHugePagesIsNotAdvised) {
  size_t bytes = 4 * kHugePageBytes;
  auto *p = static_cast<char *>(allocateTable(bytes, /*hugePages=*/false));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(isAligned(p, 64));
  EXPECT_FALSE(hugePagesAdvised(p));
  EXPECT_TRUE(allZero(p, bytes));
  std::memset(p, 1, bytes);
  freeTable(p, bytes);
}

TEST(TableMemory, SmallSizes) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(64),
                       size_t(4097), kHugePageBytes - 1}) {
    for (bool hugePages : {true, false}) {
      auto *p = static_cast<char *>(allocateTable(bytes, hugePages));
      ASSERT_NE(p, nullptr) << bytes;
      EXPECT_TRUE(isAligned(p, 64)) << bytes;
      EXPECT_TRUE(allZero(p, bytes)) << bytes;
      std::memset(p, 0x7f, bytes);
      freeTable(p, bytes);
    }
  }
  // Each zero-byte block is a block of its own.
  void *a = allocateTable(0), *b = allocateTable(0);
  EXPECT_NE(a, b);
  freeTable(a, 0);
  freeTable(b, 0);
  freeTable(nullptr, 123); // ignored
}

TEST(TableMemory, FreeGivesTheMappingsBack) {
  size_t before = countMappings();
  for (int i = 0; i < 200; ++i) {
    size_t bytes = kHugePageBytes + size_t(i) * 4096 * 37;
    void *p = allocateTable(bytes, /*hugePages=*/i % 3 != 0);
    ASSERT_NE(p, nullptr);
    static_cast<char *>(p)[bytes - 1] = 1;
    freeTable(p, bytes);
  }
  EXPECT_EQ(countMappings(), before);

  size_t bytes = 5 * kHugePageBytes;
  void *p = allocateTable(bytes);
  ASSERT_NE(p, nullptr);
  freeTable(p, bytes);
  EXPECT_FALSE(hugePagesAdvised(p)); // nothing maps it now
}

TEST(TableMemory, TooLargeIsNull) {
  EXPECT_EQ(allocateTable(SIZE_MAX), nullptr);
  EXPECT_EQ(allocateTable(SIZE_MAX - kHugePageBytes / 2), nullptr);
  EXPECT_EQ(allocateTable(SIZE_MAX, /*hugePages=*/false), nullptr);
}

TEST(TableMemory, NoMappingHoldsNull) {
  EXPECT_FALSE(hugePagesAdvised(nullptr));
  EXPECT_EQ(hugePageBytesBacking(nullptr), 0u);
}

} // namespace
