//===- TableMemory.h - embedding tables on transparent huge pages -*- C++ -*-===//
//
// Random-row gathers from a large table miss the TLB on nearly every row
// when the table sits on 4 KiB pages; on 2 MiB transparent huge pages one
// TLB entry covers 512 times as much of it. Linux backs anonymous memory
// with huge pages only where the range is 2 MiB aligned and, with
// /sys/kernel/mm/transparent_hugepage/enabled = madvise (a common default),
// only where madvise(MADV_HUGEPAGE) asked before the pages were touched.
// allocateTable does both; a large output allocated this way also takes
// one page fault per 2 MiB instead of one per 4 KiB on first touch.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_TABLEMEMORY_H
#define EMB_RUNTIME_TABLEMEMORY_H

#include <cstddef>
#include <cstdint>

namespace emb {

/// The transparent huge page size allocateTable aligns to (x86-64, and
/// aarch64 with 4 KiB base pages).
constexpr size_t kHugePageBytes = size_t(2) << 20;

/// `bytes` of zero-filled memory, 64-byte aligned, for a table or a large
/// output; nullptr when the memory cannot be had. With `hugePages` and
/// bytes >= kHugePageBytes: a private anonymous mapping, 2 MiB aligned,
/// its length rounded up to a multiple of 2 MiB, advised MADV_HUGEPAGE
/// before anything touches it (where the system has no such advice, the
/// same mapping without it). Large blocks are fresh pages from the kernel
/// (zero without being written, so allocating touches nothing); smaller
/// ones are cleared. bytes == 0 gives a valid block of its own.
/// Free with freeTable(p, bytes), the same `bytes`.
void *allocateTable(size_t bytes, bool hugePages = true);

/// Frees a block of allocateTable(bytes, ...); nullptr is ignored.
void freeTable(void *table, size_t bytes);

/// Whether the mapping that holds `p` is advised MADV_HUGEPAGE ("hg" in its
/// VmFlags in /proc/self/smaps). False where there is no smaps (not Linux)
/// or no mapping holds `p`. For tests and diagnostics: it reads smaps.
bool hugePagesAdvised(const void *p);

/// The bytes of the mapping that holds `p` that are backed by huge pages
/// now (AnonHugePages in /proc/self/smaps; 0 where unknown). Advice is a
/// request: the kernel gives huge pages as it has them free.
uint64_t hugePageBytesBacking(const void *p);

} // namespace emb

#endif // EMB_RUNTIME_TABLEMEMORY_H
