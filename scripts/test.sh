#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test (lit +
# FileCheck, GoogleTest, docs check) through CTest. Idempotent; the second
# run is incremental.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

emb_setup
emb_log "running the tests"
ctest --test-dir "$EMB_BUILD" --output-on-failure -j "$(nproc)" "$@"
