#!/usr/bin/env bash
# Installs the build into a fresh prefix, builds examples/consumer against
# it with its own CMake project (find_package(EmbMLIR)), and runs it.
# Usage: consume.sh <build dir> <source dir>
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
prefix=$build/install-test
rm -rf "$prefix" "$build/consumer-test"
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -G Ninja -S "$src/examples/consumer" -B "$build/consumer-test" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$(grep "^CMAKE_CXX_COMPILER:" "$build/CMakeCache.txt" | cut -d= -f2)" \
  -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build/consumer-test" > /dev/null
"$build/consumer-test/emb-consumer"
