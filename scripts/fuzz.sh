#!/usr/bin/env bash
# Fuzzing (docs/reliability.md, "Fuzzing"): runs the libFuzzer targets of
# tools/emb-fuzz for a bounded time each, 10 s per input at most:
#   emb-fuzz-pipeline  MLIR text -> parser, verifier, every emb pipeline;
#                      seeds: every lit test input, split at "// -----"
#   emb-fuzz-engine    bytes -> one Engine call (validation, kernels, and
#                      "a failed call wrote nothing")
# They are built in build-asan (ASan + UBSan + coverage), as the sanitizer
# stage of scripts/test.sh builds it. The corpus grows in
# build-asan/fuzz/corpus between runs; a crash, hang, leak or memory error
# fails the run and leaves its input in build-asan/fuzz/artifacts (replay:
# build-asan/bin/emb-fuzz-<target> <file>).
# Usage: scripts/fuzz.sh [seconds per target, default $EMB_FUZZ_SECONDS or 60]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

seconds="${1:-${EMB_FUZZ_SECONDS:-60}}"
asan="$EMB_ROOT/build-asan"
emb_sanitized_build "$asan" "Address;Undefined" -DLLVM_USE_SANITIZE_COVERAGE=ON \
  --target emb-fuzz-pipeline emb-fuzz-engine

fuzz="$asan/fuzz"
mkdir -p "$fuzz/artifacts" "$fuzz/corpus/pipeline" "$fuzz/corpus/engine"
# Seeds of the pipeline target: each split of each lit test input.
seeds="$fuzz/seeds/pipeline"
rm -rf "$seeds" && mkdir -p "$seeds"
find "$EMB_ROOT/test" -name '*.mlir' | sort | while read -r file; do
  name="$(basename "$file" .mlir)"
  awk -v out="$seeds/$name" '/^\/\/ -----/ { n++; next } { print > (out "-" n+0 ".mlir") }' "$file"
done

run() { # <target> <corpus dirs...>
  local target="$1" log="$fuzz/$1.log" rc=0
  shift
  emb_log "fuzzing $target for $seconds s (log: $log)"
  ASAN_OPTIONS="detect_leaks=${LEAKS:-1}" \
    "$asan/bin/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=6144 -print_final_stats=1 \
    -artifact_prefix="$fuzz/artifacts/$target-" "$@" > "$log" 2>&1 || rc=$?
  grep -E "^#[0-9]+ +(INITED|DONE)|number_of_executed_units|new_units_added" "$log" || true
  [ "$rc" = 0 ] || tail -n 60 "$log"
  return "$rc"
}

status=0
run emb-fuzz-pipeline "$fuzz/corpus/pipeline" "$seeds" || status=1
# LSan off in the engine target: its kernels are dlopened and live on.
EMB_MLIR_CACHE_DIR="$fuzz/kernel-cache" LEAKS=0 \
  run emb-fuzz-engine "$fuzz/corpus/engine" || status=1
if [ "$status" != 0 ]; then
  emb_log "fuzzing found a failure: see the inputs in $fuzz/artifacts"
  exit 1
fi
emb_log "fuzzing: no crash, hang or memory error"
