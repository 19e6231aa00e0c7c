#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test (lit +
# FileCheck, GoogleTest, docs check, pytest with Debian's torch 1.13)
# through CTest, then the Python package as pip installs it into a venv
# with torch 2.x from PyPI, and the pytest suite there (EMB_SKIP_TORCH2=1
# skips that part), then the whole suite again built with ASan + UBSan and
# the threaded tests with TSan, and a bounded fuzzing run (scripts/fuzz.sh;
# EMB_SKIP_SANITIZERS=1 skips these three).
# Idempotent; the second run is incremental.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

emb_setup
emb_log "running the tests"
ctest --test-dir "$EMB_BUILD" --output-on-failure -j "$(nproc)" "$@"
if [ "${EMB_SKIP_TORCH2:-0}" = 0 ]; then
  emb_test_torch2
fi
if [ "${EMB_SKIP_SANITIZERS:-0}" = 0 ]; then
  emb_test_sanitizers
  bash "$EMB_ROOT/scripts/fuzz.sh"
fi
