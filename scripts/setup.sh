#!/usr/bin/env bash
# Shared set-up of scripts/test.sh and scripts/demo.sh: installs what is
# missing (Debian 12 packages, idempotent), configures once and builds
# incrementally. Source it; it defines EMB_ROOT and EMB_BUILD.
set -euo pipefail

EMB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMB_BUILD="${EMB_BUILD_DIR:-$EMB_ROOT/build}"
LLVM_PREFIX=/usr/lib/llvm-22

# Packages the build and the tests need. LLVM/MLIR 22 come from Debian.
EMB_PACKAGES=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  cmake ninja-build ccache libgtest-dev
  # The Python package and its tests (torch 1.13 is the test oracle), and
  # the benchmark's chart.
  python3-dev python3-pybind11 python3-numpy python3-pytest python3-torch libtorch-dev
  python3-matplotlib
  # The torch 2.x world of the tests: a venv with torch from PyPI.
  python3-venv
  # The sanitizer and fuzzing stages: clang's ASan / UBSan / TSan and
  # libFuzzer runtimes.
  libclang-rt-22-dev
)

emb_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

emb_install_packages() {
  local missing=()
  for pkg in "${EMB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  emb_log "installing missing packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# emb_configure [build dir] [cmake options...]: the main build by default.
emb_configure() {
  local dir="${1:-$EMB_BUILD}"
  [ $# -gt 0 ] && shift
  if [ -f "$dir/build.ninja" ]; then
    return 0
  fi
  emb_log "configuring $dir"
  cmake -G Ninja -S "$EMB_ROOT" -B "$dir" "$@" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$LLVM_PREFIX/bin/clang" \
    -DCMAKE_CXX_COMPILER="$LLVM_PREFIX/bin/clang++" \
    -DLLVM_USE_LINKER=lld \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit"
}

emb_build() {
  emb_log "building (incremental)"
  cmake --build "$EMB_BUILD" "$@"
}

# The torch 2.x world: a venv with torch >= 2.4 from PyPI (kept between runs
# and clones; pip's cache), emb_mlir `pip install`ed into it as a user
# would, and the whole pytest suite run there (both autograd paths, plus
# the torch.compile / torch.export tests that 1.13 skips).
EMB_TORCH2_VENV="${EMB_TORCH2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/emb-mlir/venv-torch2}"

emb_torch2_venv() {
  if [ ! -x "$EMB_TORCH2_VENV/bin/python" ]; then
    emb_log "creating $EMB_TORCH2_VENV (torch 2.x from PyPI: a few minutes)"
    mkdir -p "$(dirname "$EMB_TORCH2_VENV")"
    /usr/bin/python3 -m venv "$EMB_TORCH2_VENV"
  fi
  "$EMB_TORCH2_VENV/bin/pip" install -q "torch>=2.4" numpy pytest
}

emb_test_torch2() {
  emb_torch2_venv
  emb_log "pip install $EMB_ROOT into $EMB_TORCH2_VENV"
  # Relative paths in ccache's keys: clones share the cache.
  CCACHE_BASEDIR="$EMB_ROOT" "$EMB_TORCH2_VENV/bin/pip" install -q "$EMB_ROOT"
  local py="$EMB_TORCH2_VENV/bin/python"
  emb_log "pytest with torch $("$py" -c 'import torch; print(torch.__version__)')"
  local cache="$EMB_BUILD/test/python-kernel-cache-torch2"
  # From the tests' folder, so that the installed package is the one imported.
  (cd "$EMB_ROOT/test/python" &&
    EMB_MLIR_CACHE_DIR="$cache" PYTHONDONTWRITEBYTECODE=1 \
      "$py" -m pytest -q -p no:cacheprovider . &&
    EMB_MLIR_CACHE_DIR="$cache" PYTHONDONTWRITEBYTECODE=1 EMB_MLIR_PURE_PYTHON=1 \
      "$py" -m pytest -q -p no:cacheprovider test_backward.py test_modules.py \
        test_errors.py test_torch_semantics.py test_huge_pages.py)
}

emb_setup() {
  emb_install_packages
  emb_configure
  emb_build "$@"
}

# Sanitized builds, each in a build directory of its own beside the main
# one (build-asan, build-tsan): the whole project with LLVM_USE_SANITIZER.
# Their objects carry line tables, whose paths ccache would otherwise hash:
# CCACHE_NOHASHDIR lets fresh clones share the cache.
emb_sanitized_build() { # <dir> <LLVM_USE_SANITIZER> [cmake -D options...] [build options...]
  local dir="$1" sanitizer="$2" options=()
  shift 2
  while [ $# -gt 0 ] && [[ "$1" == -D* ]]; do
    options+=("$1")
    shift
  done
  emb_configure "$dir" -DLLVM_USE_SANITIZER="$sanitizer" "${options[@]}"
  emb_log "building $dir ($sanitizer, incremental)"
  CCACHE_NOHASHDIR=1 cmake --build "$dir" "$@"
}

# The sanitizer stage of scripts/test.sh: every CTest test (lit, unit,
# plugins in the stock mlir-opt, install-and-consume, C API, Python) built
# with ASan + UBSan (every report fatal); then the tests that run threads,
# built with TSan. JIT-compiled kernels are not instrumented
# (docs/reliability.md, "Sanitizers in CI").
emb_test_sanitizers() {
  local asan="$EMB_ROOT/build-asan" tsan="$EMB_ROOT/build-tsan"
  # With libFuzzer's coverage instrumentation too: the fuzz targets of
  # tools/emb-fuzz are built there (emb_fuzz).
  emb_sanitized_build "$asan" "Address;Undefined" -DLLVM_USE_SANITIZE_COVERAGE=ON
  emb_log "ctest under ASan + UBSan"
  # But one suite: on x86 hosts without AVX512-BF16 (a znver4 VM with
  # AVX-512 hidden), LLVM 22 takes minutes to compile each ASan-instrumented
  # bf16 zero-padding lookup kernel (40+ s at D = 256), so the suite ran
  # past its 20-minute timeout; it passes in the main stage (7 s), and the
  # GPU-emulated lookups run here.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir "$asan" --output-on-failure -j "$(nproc)" \
      -E '^ForwardDiff\.EmbeddingEveryDtypeDimAndProfile$'
  # Whole suites where they are short (every Engine call runs on the pool),
  # the thread tests of the long differential suites.
  local whole=(JITTests FusedUpdateTests TablesTests) some=(ForwardDiffTests BackwardDiffTests)
  emb_sanitized_build "$tsan" Thread --target "${whole[@]}" "${some[@]}"
  emb_log "threaded tests under TSan"
  local t filter='*Thread*:*Concurrent*:*Executor*:*BadIndexWithManyThreads*'
  for t in "${whole[@]}" "${some[@]}"; do
    (cd "$tsan/test/unit" &&
      TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" "./$t" --gtest_brief=1 \
        --gtest_filter="$([[ " ${some[*]} " == *" $t "* ]] && echo "$filter" || echo '*')")
  done
}
