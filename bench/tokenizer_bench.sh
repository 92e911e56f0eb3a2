#!/usr/bin/env bash
# Encode throughput (MB/s): shoggo's Go tokenizer vs Hugging Face `tokenizers`, same text,
# same machine, one thread and all cores, for the Qwen3 and GPT-2 tokenizers. Also checks that
# both produce the same ids on the whole text.
#
#   bench/tokenizer_bench.sh [TEXT_FILE]
#
# Without TEXT_FILE the text is the KJV Bible (`bible -f`, Debian package bible-kjv) when
# installed, else ~5 MB of Go standard-library sources. Python comes from reference/.venv
# (or $PYTHON) and needs the `tokenizers` package.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/reference/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
"$PY" -c "import tokenizers" || { echo "tokenizer_bench: $PY lacks the tokenizers package (run reference/setup.sh)" >&2; exit 1; }

scripts/fetch-tokenizers.sh >/dev/null
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

TEXT="${1:-}"
if [[ -z "$TEXT" ]]; then
  TEXT="$TMP/corpus.txt"
  if command -v bible >/dev/null; then
    bible -f 'Genesis 1:1-Revelation 22:21' >"$TEXT" 2>/dev/null
    echo "text: KJV Bible (bible -f), $(wc -c <"$TEXT") bytes"
  else
    find "$(go env GOROOT)/src" -name '*.go' | sort | xargs cat | head -c 5000000 >"$TEXT"
    echo "text: Go standard-library sources, $(wc -c <"$TEXT") bytes"
  fi
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "python tokenizers $("$PY" -c 'import tokenizers; print(tokenizers.__version__)'), $(go version | cut -d' ' -f3)"

declare -A RES
for tok in qwen3 gpt2; do
  one=$(TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 "$PY" bench/tokenizer_bench.py --tokenizer $tok --text "$TEXT" --ids "$TMP/ids_$tok.bin")
  all=$("$PY" bench/tokenizer_bench.py --tokenizer $tok --text "$TEXT")
  RES[py_${tok}_1]=$(echo "$one" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mb_per_s"])')
  RES[py_${tok}_all]=$(echo "$all" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mb_per_s"])')
  echo "python $tok: $one"
  SHOGGO_BENCH_TEXT="$TEXT" SHOGGO_BENCH_IDS="$TMP/ids_$tok.bin" SHOGGO_BENCH_TOKENIZER=$tok \
    go test ./tokenizer/ -run '^TestBenchParity$' -count=1 -v | grep -E 'identical|differ|FAIL' || true
done

out=$(SHOGGO_BENCH_TEXT="$TEXT" go test ./tokenizer/ -run '^$' -bench '^BenchmarkEncode(Qwen|GPT2)(Parallel)?$' -benchtime 5x -count 3)
echo "$out" | grep -E '^Benchmark'
# best of the -count runs, as the Python side reports its best of --repeat
gomb() { echo "$out" | awk -v n="$1" '$1 ~ "^"n"(-[0-9]+)?$" {for (i=1;i<=NF;i++) if ($(i+1)=="MB/s" && $i+0 > m) m = $i+0} END {print m}'; }
RES[go_qwen3_1]=$(gomb BenchmarkEncodeQwen)
RES[go_qwen3_all]=$(gomb BenchmarkEncodeQwenParallel)
RES[go_gpt2_1]=$(gomb BenchmarkEncodeGPT2)
RES[go_gpt2_all]=$(gomb BenchmarkEncodeGPT2Parallel)

echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-8s %12s %12s %8s\n' tokenizer threads "go MB/s" "python MB/s" ratio
for tok in qwen3 gpt2; do
  for th in 1 all; do
    g=${RES[go_${tok}_${th}]}; p=${RES[py_${tok}_${th}]}
    printf '%-10s %-8s %12s %12s %8s\n' $tok $th "$g" "$p" "$(awk -v g="$g" -v p="$p" 'BEGIN{printf "%.2fx", g/p}')"
  done
done
