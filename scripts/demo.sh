#!/usr/bin/env bash
# The same set-up as scripts/test.sh, then the main job on a built-in
# example: parse, verify and print an emb program, canonicalise it, and show
# what a verifier error looks like.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

emb_setup --target emb-opt
EMB_OPT="$EMB_BUILD/bin/emb-opt"
EXAMPLE="$EMB_ROOT/examples/demo.mlir"

emb_log "1. the example program ($EXAMPLE)"
grep -v '^//' "$EXAMPLE"

emb_log "2. emb-opt parses and verifies it, and prints it back"
"$EMB_OPT" "$EXAMPLE"

emb_log "3. canonicalised: negative padding_idx normalised to V + padding_idx"
"$EMB_OPT" "$EXAMPLE" --canonicalize

emb_log "4. a program that breaks a rule: emb-opt names the operand and exits non-zero"
bad='func.func @f(%w: tensor<1000x64xf32>, %ids: tensor<4x8xi64>, %psw: tensor<4x8xf32>) -> tensor<4x64xf32> {
  %0 = emb.bag mean %w[%ids] per_sample_weights(%psw : tensor<4x8xf32>) : tensor<1000x64xf32>[tensor<4x8xi64>] -> tensor<4x64xf32>
  return %0 : tensor<4x64xf32>
}'
echo "$bad"
if echo "$bad" | "$EMB_OPT" 2>&1; then
  echo "unexpected: the invalid program was accepted" >&2
  exit 1
fi
emb_log "done: the dialect reference is docs/Dialects/EmbDialect.md"
