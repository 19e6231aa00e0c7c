#!/usr/bin/env bash
# The same set-up as scripts/test.sh, then the main job: an emb program
# parsed, verified and lowered by emb-opt, and a kernel generated for one
# embedding_bag call, checked against the reference and timed by emb-run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

emb_setup --target emb-opt --target emb-run
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
emb_log "5. the loops the CPU lowering makes of an embedding_bag (convert-emb-to-scf)"
"$EMB_OPT" "$EMB_ROOT/test/Pipelines/cpu_pipeline.mlir" --convert-emb-to-scf --canonicalize --cse |
  awk '/func.func @bag_sum/,/^  }/'

emb_log "6. emb-run: a kernel generated for embedding_bag(mode=sum, D=128, L=32), checked and timed"
"$EMB_BUILD/bin/emb-run" --op embedding_bag --mode sum --num-embeddings 200000 --dim 128 \
  --batch 4096 --bag-size 32 --check --bench
emb_log "7. ... and its gradient (dense, deterministic), checked and timed"
"$EMB_BUILD/bin/emb-run" --op embedding_bag_backward --mode sum --num-embeddings 200000 \
  --dim 128 --batch 4096 --bag-size 32 --check --bench
emb_log "done: dialect reference docs/Dialects/EmbDialect.md, flags: emb-run --help"
