//===- ChildProcess.h - run work in a forked child, survive its crash -----===//
//
// The crash isolation of the JIT (KernelCacheOptions::compileInChild):
// LLVM reports some internal errors by aborting, and a bug in a lowering
// can crash it. Run in a child process, such a failure is an error of the
// call that asked for the kernel, not the end of the caller's process.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_JIT_CHILDPROCESS_H
#define EMB_LIB_JIT_CHILDPROCESS_H

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <string>

namespace emb::jit {

/// Runs `work` in a child process made by fork() and returns what it
/// returned (bytes, or an error's message). A child that crashes, aborts,
/// exits without an answer, or runs past `timeoutSeconds` (> 0; it is then
/// killed) is an error that names `what`. The caller must hold whatever
/// lock keeps other threads out of the state `work` uses: only the calling
/// thread exists in the child.
llvm::Expected<std::string>
runInChildProcess(llvm::function_ref<llvm::Expected<std::string>()> work,
                  double timeoutSeconds, const llvm::Twine &what);

} // namespace emb::jit

#endif // EMB_LIB_JIT_CHILDPROCESS_H
