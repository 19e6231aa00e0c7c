//===- JITTest.cpp - kernel specs and the memory and disk caches ----------===//

#include "emb/JIT/JIT.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <dlfcn.h>

#include <sys/stat.h>
#include <unistd.h>

using namespace emb;

namespace {

KernelSpec bagSpec(int64_t dim) {
  KernelSpec s;
  s.op = OpKind::embedding_bag;
  s.weight = DType::f32;
  s.indices = DType::i64;
  s.offsets = DType::i32;
  s.dim = dim;
  s.mode = BagMode::mean;
  s.includeLastOffset = true;
  s.paddingIdx = 3;
  return s;
}

/// A small kernel, one per `maxNorm`: distinct specs that compile fast.
KernelSpec renormSpec(double maxNorm) {
  KernelSpec r;
  r.op = OpKind::renorm;
  r.dim = 4;
  r.maxNorm = maxNorm;
  r.normType = 2.0;
  return r;
}

/// Whether `address` lies in a loaded shared object.
bool mapped(KernelFn fn) {
  Dl_info info;
  return dladdr(reinterpret_cast<void *>(fn), &info) != 0;
}

/// The number of mappings of this process.
int mappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line))
    ++n;
  return n;
}

/// Replaces `path` by a new file holding `data` (a new inode, as another
/// process writing the cache would: the loaded kernel stays mapped).
void replaceFile(const std::string &path, const std::string &data) {
  std::string tmp = path + ".new";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << data;
  ASSERT_FALSE(static_cast<bool>(llvm::sys::fs::rename(tmp, path)));
}

/// A fresh, empty directory under the test's working directory.
std::string freshDir(const std::string &name) {
  llvm::SmallString<128> dir;
  llvm::sys::fs::current_path(dir);
  llvm::sys::path::append(dir, "jit-test-" + name);
  llvm::sys::fs::remove_directories(dir);
  // Private, as the cache requires of a directory it writes.
  llvm::sys::fs::create_directories(dir, true, llvm::sys::fs::owner_all);
  return std::string(dir);
}

TEST(KernelSpec, StableTextAndHash) {
  KernelSpec s = bagSpec(128);
  EXPECT_EQ(s.str(), "embedding_bag:host:w=f32:i=i64:o=i32:D=128:mode=mean:1d:"
                     "last:pad=3");
  EXPECT_EQ(s.symbolName(), bagSpec(128).symbolName());
  EXPECT_NE(s.hash(), bagSpec(64).hash());
  KernelSpec r;
  r.op = OpKind::renorm;
  r.dim = 4;
  r.maxNorm = 1.0;
  r.normType = INFINITY;
  EXPECT_EQ(r.str(), "renorm:host:w=f32:i=i64:D=4:max_norm=0x1p+0:p=inf");
}

// Every field a kernel depends on is in the spec text, for every bag op:
// the sparse and per_sample_weights gradients once left out the bag fields,
// so a 2-D or mean kernel was served a cached 1-D or sum kernel (a crash).
TEST(KernelSpec, BagFieldsAreKeyedForEveryBagOp) {
  for (OpKind op : {OpKind::embedding_bag, OpKind::embedding_bag_backward,
                    OpKind::embedding_bag_psw_backward,
                    OpKind::embedding_bag_sparse_backward}) {
    KernelSpec base;
    base.op = op;
    base.dim = 8;
    std::vector<KernelSpec> variants(6, base);
    variants[0].mode = BagMode::mean;
    variants[1].twoD = true;
    variants[2].perSampleWeights = true;
    variants[3].includeLastOffset = true;
    variants[4].offsets = DType::i32;
    variants[5].paddingIdx = 2;
    for (const KernelSpec &v : variants)
      EXPECT_NE(v.str(), base.str()) << opKindName(op) << ": " << v.str();
  }
}

TEST(KernelCache, MemoryThenDiskThenRebuildOfCorruptEntry) {
  std::string dir = freshDir("disk");
  KernelSpec spec = bagSpec(16);
  {
    KernelCache cache({dir, true});
    auto fn = cache.get(spec);
    ASSERT_TRUE(static_cast<bool>(fn)) << llvm::toString(fn.takeError());
    auto again = cache.get(spec);
    ASSERT_TRUE(static_cast<bool>(again));
    EXPECT_EQ(fn->function(), again->function());
    EXPECT_EQ(cache.stats().compiles, 1u);
    EXPECT_EQ(cache.stats().memoryHits, 1u);
  }
  std::string entry = KernelCache({dir, true}).entryPath(spec);
  ASSERT_TRUE(llvm::sys::fs::exists(entry)) << entry;
  {
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
    EXPECT_EQ(cache.stats().diskHits, 1u);
    EXPECT_EQ(cache.stats().compiles, 0u);
  }
  // Corrupt the entry: one flipped byte in the middle.
  {
    auto bytes = llvm::MemoryBuffer::getFile(entry);
    ASSERT_TRUE(static_cast<bool>(bytes));
    std::string data = (*bytes)->getBuffer().str();
    data[data.size() / 2] ^= 0x5a;
    replaceFile(entry, data);
  }
  {
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
    EXPECT_EQ(cache.stats().rejectedDiskEntries, 1u);
    EXPECT_EQ(cache.stats().compiles, 1u);
  }
  // Garbage and a truncated file are ignored too, never loaded.
  for (std::string junk : {std::string("not an ELF file"), std::string()}) {
    replaceFile(entry, junk);
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
    EXPECT_EQ(cache.stats().rejectedDiskEntries, 1u);
  }
}

TEST(KernelCache, ConcurrentCallersShareOneCompilation) {
  KernelCache cache({freshDir("concurrent"), true});
  KernelSpec spec = bagSpec(24);
  std::vector<std::thread> threads;
  std::vector<KernelFn> results(8);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto fn = cache.get(spec);
      results[t] = fn ? fn->function() : nullptr;
      if (!fn)
        llvm::consumeError(fn.takeError());
    });
  for (auto &t : threads)
    t.join();
  EXPECT_EQ(cache.stats().compiles, 1u);
  for (KernelFn fn : results)
    EXPECT_EQ(fn, results[0]);
  EXPECT_NE(results[0], nullptr);
}

TEST(KernelCache, DiskCacheCanBeDisabled) {
  std::string dir = freshDir("nodisk");
  KernelCache cache({dir, false});
  ASSERT_TRUE(static_cast<bool>(cache.get(bagSpec(8))));
  std::error_code ec;
  EXPECT_EQ(llvm::sys::fs::directory_iterator(dir, ec),
            llvm::sys::fs::directory_iterator());
}

TEST(KernelCache, UnwritableDirectoryFallsBackToMemory) {
  KernelCache cache({"/proc/emb-mlir-cannot-write-here", true});
  auto fn = cache.get(bagSpec(8));
  ASSERT_TRUE(static_cast<bool>(fn)) << llvm::toString(fn.takeError());
  EXPECT_EQ(cache.stats().diskErrors, 1u);
  EXPECT_EQ(cache.stats().compiles, 1u);
}

TEST(KernelCache, EntryNameCarriesTheCompilerVersion) {
  KernelCache cache({freshDir("names"), true});
  std::string path = cache.entryPath(bagSpec(8));
  EXPECT_NE(path.find(bagSpec(8).symbolName() + "-"), std::string::npos)
      << path;
  EXPECT_EQ(llvm::sys::path::extension(path), ".so");
}

// Disk cache faults end in a kernel compiled in memory, never a failed
// call, a hang or an unbounded read (issue 16, items 3 to 5).
TEST(KernelCache, CachePathThatIsAFileFallsBackToMemory) {
  KernelCache cache({"/dev/null", true});
  auto fn = cache.get(bagSpec(8));
  ASSERT_TRUE(static_cast<bool>(fn)) << llvm::toString(fn.takeError());
  EXPECT_EQ(cache.stats().diskErrors, 1u);
}

TEST(KernelCache, EntriesThatAreNotRegularFilesAreNeverRead) {
  std::string dir = freshDir("special");
  KernelSpec spec = bagSpec(16);
  std::string entry = KernelCache({dir, true}).entryPath(spec);
  // A FIFO blocked the read forever; a symlink to /dev/zero read without
  // bound. Both are refused, and the rebuilt entry replaces them.
  llvm::sys::fs::remove(entry);
  ASSERT_EQ(mkfifo(entry.c_str(), 0600), 0);
  {
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
    EXPECT_EQ(cache.stats().rejectedDiskEntries, 1u);
    EXPECT_EQ(cache.stats().compiles, 1u);
  }
  llvm::sys::fs::remove(entry);
  ASSERT_EQ(symlink("/dev/zero", entry.c_str()), 0);
  {
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
    EXPECT_EQ(cache.stats().rejectedDiskEntries, 1u);
    EXPECT_EQ(cache.stats().compiles, 1u);
  }
  // The rebuilt entry is a regular file again, and loads.
  KernelCache cache({dir, true});
  ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
  EXPECT_EQ(cache.stats().diskHits, 1u);
}

TEST(KernelCache, ADirectoryOthersMayWriteIsNotUsed) {
  // Another user could plant an entry there, which we would run.
  std::string dir = freshDir("shared");
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  KernelCache cache({dir, true});
  ASSERT_TRUE(static_cast<bool>(cache.get(bagSpec(8))));
  EXPECT_EQ(cache.stats().diskErrors, 1u);
  EXPECT_FALSE(llvm::sys::fs::exists(cache.entryPath(bagSpec(8))));
  // A missing directory is created private to this user.
  std::string fresh = dir + "/private";
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
  KernelCache created({fresh, true});
  ASSERT_TRUE(static_cast<bool>(created.get(bagSpec(8))));
  struct stat st;
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(created.stats().diskErrors, 0u);
}

TEST(KernelCache, EntriesOthersMayWriteAreNotLoaded) {
  std::string dir = freshDir("entrymode");
  KernelSpec spec = bagSpec(16);
  {
    KernelCache cache({dir, true});
    ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
  }
  std::string entry = KernelCache({dir, true}).entryPath(spec);
  ASSERT_EQ(chmod(entry.c_str(), 0666), 0);
  KernelCache cache({dir, true});
  ASSERT_TRUE(static_cast<bool>(cache.get(spec)));
  EXPECT_EQ(cache.stats().rejectedDiskEntries, 1u);
  EXPECT_EQ(cache.stats().diskHits, 0u);
}

TEST(KernelCache, NoSharedDefaultDirectory) {
  // Without HOME or XDG_CACHE_HOME the default is per user, not a /tmp
  // directory every user shares.
  std::string saved[3];
  const char *names[3] = {"EMB_MLIR_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i) {
    if (const char *v = std::getenv(names[i]))
      saved[i] = v;
    unsetenv(names[i]);
  }
  std::string dir = KernelCache::defaultDirectory();
  for (int i = 0; i < 3; ++i)
    if (!saved[i].empty())
      setenv(names[i], saved[i].c_str(), 1);
  EXPECT_EQ(dir, "/tmp/emb-mlir-cache-" + std::to_string(geteuid()));
}

// Issue 16 item 8: the memory cache keeps at most maxLoadedKernels kernels;
// the least recently used is unloaded once no caller holds it.
TEST(KernelCache, LeastRecentlyUsedKernelsAreUnloaded) {
  KernelCacheOptions options{"", false};
  options.maxLoadedKernels = 2;
  KernelCache cache(options);
  auto a = cache.get(renormSpec(1));
  ASSERT_TRUE(static_cast<bool>(a)) << llvm::toString(a.takeError());
  KernelFn aFn = a->function(), bFn = nullptr;
  {
    auto b = cache.get(renormSpec(2));
    ASSERT_TRUE(static_cast<bool>(b));
    bFn = b->function();
  }
  ASSERT_TRUE(static_cast<bool>(cache.get(renormSpec(1)))); // a: most recent
  auto c = cache.get(renormSpec(3));                       // evicts b
  ASSERT_TRUE(static_cast<bool>(c));
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.loadedKernels(), 2u);
  EXPECT_FALSE(mapped(bFn)) << "nobody held b: it is unloaded";
  EXPECT_TRUE(mapped(aFn));
  ASSERT_TRUE(static_cast<bool>(cache.get(renormSpec(2)))); // evicts a
  EXPECT_EQ(cache.stats().compiles, 4u);
  EXPECT_EQ(cache.stats().evictions, 2u);
  EXPECT_TRUE(mapped(aFn)) << "a handle holds a: it stays loaded";
  *a = Kernel();
  EXPECT_FALSE(mapped(aFn));
}

TEST(KernelCache, ManyDistinctSpecsKeepTheMappingsBounded) {
  KernelCacheOptions options{"", false};
  options.maxLoadedKernels = 4;
  KernelCache cache(options);
  ASSERT_TRUE(static_cast<bool>(cache.get(renormSpec(0.5))));
  int before = mappings();
  for (int i = 1; i <= 100; ++i)
    ASSERT_TRUE(static_cast<bool>(cache.get(renormSpec(i))));
  // Each kernel maps 4-5 regions: 100 kept would be ~450 more.
  EXPECT_LT(mappings() - before, 40);
  EXPECT_EQ(cache.loadedKernels(), 4u);
}

// Crash isolation: a compiler that aborts (as LLVM does on an internal
// error) or hangs in the child process is an error of the call.
TEST(KernelCache, CompilerCrashInAChildProcessIsAnError) {
  KernelCacheOptions options{"", false};
  options.compileInChild = true;
  std::atomic<bool> crash{true};
  options.beforeCompile = [&](const KernelSpec &) {
    if (crash)
      std::abort();
  };
  KernelCache cache(options);
  auto fn = cache.get(renormSpec(5));
  ASSERT_FALSE(static_cast<bool>(fn));
  std::string message = llvm::toString(fn.takeError());
  EXPECT_NE(message.find("crashed: signal " + std::to_string(SIGABRT)),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(renormSpec(5).str()), std::string::npos) << message;
  crash = false; // failures are not cached: the next call compiles
  auto again = cache.get(renormSpec(5));
  ASSERT_TRUE(static_cast<bool>(again)) << llvm::toString(again.takeError());
  EXPECT_TRUE(mapped(again->function()));
  EXPECT_EQ(cache.stats().compiles, 1u);
}

TEST(KernelCache, CompilationPastTheTimeLimitIsStopped) {
  KernelCacheOptions options{"", false};
  options.compileInChild = true;
  options.compileTimeoutSeconds = 0.5;
  options.beforeCompile = [](const KernelSpec &) { sleep(60); };
  KernelCache cache(options);
  auto start = std::chrono::steady_clock::now();
  auto fn = cache.get(renormSpec(6));
  ASSERT_FALSE(static_cast<bool>(fn));
  std::string message = llvm::toString(fn.takeError());
  EXPECT_NE(message.find("took over 0.5 s"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(KernelCache, CompileInChildFromTheEnvironment) {
  setenv("EMB_MLIR_COMPILE_IN_CHILD", "1", 1);
  KernelCacheOptions options{"", false};
  options.beforeCompile = [](const KernelSpec &) { std::abort(); };
  KernelCache cache(options);
  auto fn = cache.get(renormSpec(7)); // would end this process in-process
  unsetenv("EMB_MLIR_COMPILE_IN_CHILD");
  ASSERT_FALSE(static_cast<bool>(fn));
  llvm::consumeError(fn.takeError());
  int calls = 0;
  options.beforeCompile = [&](const KernelSpec &) { ++calls; };
  KernelCache inProcess(options);
  ASSERT_TRUE(static_cast<bool>(inProcess.get(renormSpec(7))));
  EXPECT_EQ(calls, 1) << "in process by default: the hook ran here";
}

} // namespace
