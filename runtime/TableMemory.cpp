//===- TableMemory.cpp - embedding tables on transparent huge pages -------===//
//
// Blocks of kHugePageBytes or more are anonymous mappings (zero pages from
// the kernel, given back by munmap); a huge-page one is mapped 2 MiB longer
// than it needs and trimmed at both ends to a 2 MiB aligned range. Smaller
// blocks come from posix_memalign and are cleared. freeTable tells the two
// apart by `bytes`, so callers pass the size they allocated.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/TableMemory.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define EMB_HAVE_MMAP 1
#endif

namespace emb {
namespace {

constexpr size_t kSmallAlignment = 64;

size_t roundUp(size_t n, size_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

bool isLarge(size_t bytes) { return bytes >= kHugePageBytes; }

/// The length of the mapping of a large block (SIZE_MAX when it overflows).
size_t mappedLength(size_t bytes) {
  if (bytes > SIZE_MAX - kHugePageBytes)
    return SIZE_MAX;
  return roundUp(bytes, kHugePageBytes);
}

#ifdef EMB_HAVE_MMAP
void *mapAnonymous(size_t length) {
  void *p = mmap(nullptr, length, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void *allocateLarge(size_t bytes, bool hugePages) {
  size_t length = mappedLength(bytes);
  if (length == SIZE_MAX)
    return nullptr;
  if (!hugePages)
    return mapAnonymous(length);
  // Map one huge page more, keep the 2 MiB aligned `length` inside it.
  if (length > SIZE_MAX - kHugePageBytes)
    return nullptr;
  char *raw = static_cast<char *>(mapAnonymous(length + kHugePageBytes));
  if (!raw)
    return nullptr;
  uintptr_t start = roundUp(reinterpret_cast<uintptr_t>(raw), kHugePageBytes);
  char *aligned = reinterpret_cast<char *>(start);
  size_t head = aligned - raw;
  size_t tail = kHugePageBytes - head;
  if (head)
    munmap(raw, head);
  if (tail)
    munmap(aligned + length, tail);
#ifdef MADV_HUGEPAGE
  // Before the first touch: a page faulted in as 4 KiB stays so until
  // khugepaged collapses it (if ever). A refusal (THP compiled out, or
  // disabled) leaves ordinary pages: still a valid table.
  madvise(aligned, length, MADV_HUGEPAGE);
#endif
  return aligned;
}

void freeLarge(void *table, size_t bytes) {
  munmap(table, mappedLength(bytes));
}
#else
// Without mmap: aligned memory from the C library, cleared; no advice.
void *allocateLarge(size_t bytes, bool) {
  size_t length = mappedLength(bytes);
  if (length == SIZE_MAX)
    return nullptr;
  void *p = std::aligned_alloc(kHugePageBytes, length);
  if (p)
    std::memset(p, 0, bytes);
  return p;
}

void freeLarge(void *table, size_t) { std::free(table); }
#endif

void *allocateSmall(size_t bytes) {
  size_t length = roundUp(bytes ? bytes : 1, kSmallAlignment);
  void *p = nullptr;
#ifdef EMB_HAVE_MMAP
  if (posix_memalign(&p, kSmallAlignment, length) != 0)
    return nullptr;
#else
  p = std::aligned_alloc(kSmallAlignment, length);
  if (!p)
    return nullptr;
#endif
  std::memset(p, 0, length);
  return p;
}

/// Calls `onField(key, value)` for each field of the smaps entry of the
/// mapping that holds `p`; false when there is none (or no smaps).
template <typename OnField> bool forSmapsEntryOf(const void *p, OnField onField) {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps)
    return false;
  uint64_t address = reinterpret_cast<uintptr_t>(p);
  bool inside = false, found = false;
  std::string line;
  while (std::getline(smaps, line)) {
    uint64_t lo, hi;
    size_t firstSpace = line.find(' ');
    std::string first = line.substr(0, firstSpace);
    // A mapping's header ("lo-hi perms offset dev inode path") opens its
    // entry; "Key: value" lines follow.
    if (first.find(':') == std::string::npos &&
        std::sscanf(first.c_str(), "%" SCNx64 "-%" SCNx64, &lo, &hi) == 2) {
      if (found)
        break;
      inside = lo <= address && address < hi;
      found = inside;
      continue;
    }
    if (inside && !first.empty() && first.back() == ':')
      onField(first.substr(0, first.size() - 1),
              firstSpace == std::string::npos ? std::string()
                                              : line.substr(firstSpace + 1));
  }
  return found;
}

} // namespace

void *allocateTable(size_t bytes, bool hugePages) {
  return isLarge(bytes) ? allocateLarge(bytes, hugePages)
                        : allocateSmall(bytes);
}

void freeTable(void *table, size_t bytes) {
  if (!table)
    return;
  if (isLarge(bytes))
    freeLarge(table, bytes);
  else
    std::free(table);
}

bool hugePagesAdvised(const void *p) {
  bool advised = false;
  forSmapsEntryOf(p, [&](const std::string &key, const std::string &value) {
    if (key != "VmFlags")
      return;
    std::istringstream flags(value);
    std::string flag;
    while (flags >> flag)
      advised |= flag == "hg";
  });
  return advised;
}

uint64_t hugePageBytesBacking(const void *p) {
  uint64_t kiB = 0;
  forSmapsEntryOf(p, [&](const std::string &key, const std::string &value) {
    if (key == "AnonHugePages")
      kiB = std::strtoull(value.c_str(), nullptr, 10);
  });
  return kiB * 1024;
}

} // namespace emb
