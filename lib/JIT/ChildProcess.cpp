//===- ChildProcess.cpp - run work in a forked child, survive its crash ---===//
//
// The child writes one tag byte ('o': bytes follow; 'e': an error message
// follows) and its payload to a pipe, then _exit(0)s (no atexit handlers
// or stdio buffers of the parent run twice). The parent reads to EOF under
// the deadline and reaps the child.
//
//===----------------------------------------------------------------------===//

#include "ChildProcess.h"

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace emb;

namespace {

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

void writeAll(int fd, const char *data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; // the parent is gone or stopped reading: nothing to tell
    data += n;
    size -= static_cast<size_t>(n);
  }
}

[[noreturn]] void childMain(
    int out, llvm::function_ref<llvm::Expected<std::string>()> work) {
  llvm::Expected<std::string> result = work();
  char tag = result ? 'o' : 'e';
  std::string payload =
      result ? std::move(*result) : llvm::toString(result.takeError());
  writeAll(out, &tag, 1);
  writeAll(out, payload.data(), payload.size());
  ::close(out);
  _exit(0);
}

} // namespace

llvm::Expected<std::string> jit::runInChildProcess(
    llvm::function_ref<llvm::Expected<std::string>()> work,
    double timeoutSeconds, const llvm::Twine &what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return error("cannot start a child process for " + what + ": pipe: " +
                 std::strerror(errno));
  // Nothing buffered is written twice (the child ends with _exit or a
  // signal, but a sanitizer's exit may flush).
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return error("cannot start a child process for " + what + ": fork: " +
                 std::strerror(err));
  }
  if (pid == 0) {
    ::close(fds[0]);
    childMain(fds[1], work);
  }
  ::close(fds[1]);

  using Clock = std::chrono::steady_clock;
  auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(timeoutSeconds));
  std::string bytes;
  bool timedOut = false;
  char buffer[1 << 16];
  for (;;) {
    int waitMs = -1;
    if (timeoutSeconds > 0) {
      auto left = std::chrono::duration<double, std::milli>(deadline -
                                                            Clock::now());
      if (left.count() <= 0) {
        timedOut = true;
        break;
      }
      waitMs = static_cast<int>(std::min(std::ceil(left.count()), 1e9));
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    int ready = ::poll(&p, 1, waitMs);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready == 0) {
      timedOut = true;
      break;
    }
    ssize_t n = ready < 0 ? -1 : ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break; // EOF: the child is done (or dead)
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timedOut)
    ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut) {
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), "%g", timeoutSeconds);
    return error(what + " took over " + seconds +
                 " s; its process was stopped");
  }
  if (WIFSIGNALED(status))
    return error(what + " crashed: signal " + llvm::Twine(WTERMSIG(status)) +
                 " (" + strsignal(WTERMSIG(status)) +
                 ") in its child process; this process is unharmed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes.empty())
    return error(what + " failed: its child process exited with status " +
                 llvm::Twine(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                 " without an answer");
  if (bytes[0] == 'e')
    return error(llvm::StringRef(bytes).drop_front());
  if (bytes[0] != 'o')
    return error(what + " failed: its child process answered garbage");
  bytes.erase(0, 1);
  return bytes;
}
