// Force-included (-include) into every C++ file of an ASan build (see the
// top-level CMakeLists.txt). LLVM's headers poison and unpoison the slabs
// of their allocators (BumpPtrAllocator, Recycler) when the including file
// is built with ASan; the LLVM/MLIR libraries they share those allocators
// with are not. Half-annotated allocators give false "use-after-poison"
// reports inside libMLIR (seen on every parse), so our files see the
// headers as an uninstrumented LLVM build does: no annotations.
#ifndef EMB_CMAKE_LLVMHEADERSWITHOUTASAN_H
#define EMB_CMAKE_LLVMHEADERSWITHOUTASAN_H
#include "llvm/Support/Compiler.h"
#undef LLVM_ADDRESS_SANITIZER_BUILD
#define LLVM_ADDRESS_SANITIZER_BUILD 0
#define __asan_poison_memory_region(p, size) ((void)(p), (void)(size))
#define __asan_unpoison_memory_region(p, size) ((void)(p), (void)(size))
#endif
