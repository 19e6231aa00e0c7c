//===- Sanitizers.h - kernels in a process built with ASan ----------------===//
//
// In a build with AddressSanitizer (scripts/test.sh's sanitizer stage), the
// JIT instruments the kernels it compiles too: their loads and stores are
// checked like the rest of the process's, so a kernel that reads outside a
// caller's buffer is a report, not a silent wrong result. Instrumented
// kernels call the ASan runtime: their disk-cache entries carry "+asan" in
// the compiler version, and are never loaded by an uninstrumented process.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_JIT_SANITIZERS_H
#define EMB_LIB_JIT_SANITIZERS_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMB_JIT_KERNELS_USE_ASAN 1
#endif
#endif
#if !defined(EMB_JIT_KERNELS_USE_ASAN) && defined(__SANITIZE_ADDRESS__)
#define EMB_JIT_KERNELS_USE_ASAN 1
#endif
#ifndef EMB_JIT_KERNELS_USE_ASAN
#define EMB_JIT_KERNELS_USE_ASAN 0
#endif

#endif // EMB_LIB_JIT_SANITIZERS_H
