#!/usr/bin/env bash
# Installs the build into a fresh prefix, runs the installed tools, builds
# examples/consumer against it with its own CMake project
# (find_package(EmbMLIR)), and runs it.
# Usage: consume.sh <build dir> <source dir>
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
prefix=$build/install-test
rm -rf "$prefix" "$build/consumer-test"
cmake --install "$build" --prefix "$prefix" > /dev/null
# The installed tools start (their RUNPATH finds LLVM's libraries) and work.
"$prefix/bin/emb-opt" "$src/examples/demo.mlir" > /dev/null
EMB_MLIR_CACHE_DIR="$build/install-test-cache" \
  "$prefix/bin/emb-run" --op embedding_bag --mode max --check > /dev/null
# The installed plugins load into LLVM's stock mlir-opt and lower emb IR.
mlir_opt="$(dirname "$(grep "^LLVM_DIR:" "$build/CMakeCache.txt" | cut -d= -f2)")/../../bin/mlir-opt"
# A sanitized build: its plugins need the sanitizer's runtime in the stock
# mlir-opt, and the consumer links sanitized libraries.
preload="$(grep "^EMB_SANITIZER_PRELOAD:" "$build/CMakeCache.txt" | cut -d= -f2 || true)"
sanitizer="$(grep "^LLVM_USE_SANITIZER:" "$build/CMakeCache.txt" | cut -d= -f2 || true)"
consumer_flags=()
case "$sanitizer" in
  *Address*) consumer_flags=(-DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -shared-libsan") ;;
  *Thread*) consumer_flags=(-DCMAKE_CXX_FLAGS="-fsanitize=thread -shared-libsan") ;;
esac
if [ -n "$preload" ]; then
  consumer_flags+=(-DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath,$(dirname "$preload")")
fi
env ${preload:+LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0} \
  "$mlir_opt" --load-dialect-plugin="$prefix/lib/EmbDialectPlugin.so" \
  --load-pass-plugin="$prefix/lib/EmbPassPlugin.so" \
  "$src/test/Pipelines/cpu_pipeline.mlir" \
  --pass-pipeline="builtin.module(emb-cpu-pipeline)" | grep "llvm.func" > /dev/null
cmake -G Ninja -S "$src/examples/consumer" -B "$build/consumer-test" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$(grep "^CMAKE_CXX_COMPILER:" "$build/CMakeCache.txt" | cut -d= -f2)" \
  -DCMAKE_BUILD_TYPE=Release "${consumer_flags[@]}" > /dev/null
cmake --build "$build/consumer-test" > /dev/null
"$build/consumer-test/emb-consumer"
