#!/usr/bin/env bash
# Proves that reward models written by shoggo (Llama, GPT-2, Qwen2 sequence-classification
# directories) load in transformers.AutoModelForSequenceClassification and score rows as shoggo
# did (max |diff| <= 1e-4). Python: $PY, else reference/.venv/bin/python, else /work/refvenv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-reference/.venv/bin/python}
[ -x "$PY" ] || PY=/work/refvenv/.venv/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SHOGGO_EXPORT_DIR="$out" go test -count=1 -run TestExportRewardModel ./align/ >/dev/null
"$PY" reference/check_reward_model.py "$out"/*/
