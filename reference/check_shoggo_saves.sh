#!/usr/bin/env bash
# Proves that model directories written by shoggo (GPT-2, Llama, Qwen2 and Qwen3;
# fp32, sharded bf16, fp16) load in transformers.AutoModelForCausalLM and give
# the logits shoggo computed (max |diff| <= 1e-4). Needs reference/.venv
# (reference/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SHOGGO_EXPORT_DIR="$out" go test -count=1 -run TestExportForTransformers ./model/ >/dev/null
status=0
for d in "$out"/*/; do
  if ! reference/.venv/bin/python reference/check_hf_load.py "$d"; then status=1; fi
done
exit $status
