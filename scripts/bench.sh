#!/usr/bin/env bash
# The forward / backward benchmark once per torch, each in its own process:
# Debian's torch 1.13 and torch 2.x from PyPI (FBGEMM inside: the
# performance anchor) in the venv the tests use. Builds what is missing
# first; not part of the test command. Arguments go to bench/bench.py
# (e.g. --quick, --grid, --threads N).
#
#   scripts/bench.sh --grid > grid.md
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

emb_setup
emb_torch2_venv
for py in /usr/bin/python3 "$EMB_TORCH2_VENV/bin/python"; do
  emb_log "bench/bench.py with $("$py" -c 'import torch; print("torch", torch.__version__)')"
  "$py" "$EMB_ROOT/bench/bench.py" --build "$EMB_BUILD" "$@"
done
