#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` on a text file, for comparison with the Go
benchmarks BenchmarkEncodeQwen* / BenchmarkEncodeGPT2* (bench/tokenizer_bench.sh runs both).

The text is cut into documents of at least 4096 bytes at line ends, exactly as the Go
benchmark does, and encoded with Tokenizer.encode_batch after one warm-up pass. Thread count
is set by the environment: TOKENIZERS_PARALLELISM=false (and RAYON_NUM_THREADS=1) for one
thread, unset for all cores. Prints one JSON line.
"""
import argparse
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
from tokenizer_fixtures import load_gpt2, load_qwen  # noqa: E402


def docs_of(text):
    data = text.encode("utf-8")
    docs, start = [], 0
    i = data.find(b"\n")
    while i >= 0:
        if i + 1 - start >= 4096:
            docs.append(data[start:i + 1].decode("utf-8"))
            start = i + 1
        i = data.find(b"\n", i + 1)
    if start < len(data):
        docs.append(data[start:].decode("utf-8"))
    return docs, len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", choices=["qwen3", "gpt2"], default="qwen3")
    ap.add_argument("--text", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ids", help="write all ids (little-endian int32) here")
    args = ap.parse_args()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    docs, nbytes = docs_of(text)
    tok = load_qwen() if args.tokenizer == "qwen3" else load_gpt2()
    encs = tok.encode_batch(docs)  # warm-up (fills the BPE cache)
    ntok = sum(len(e.ids) for e in encs)
    if args.ids:
        with open(args.ids, "wb") as f:
            for e in encs:
                f.write(struct.pack(f"<{len(e.ids)}i", *e.ids))
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        tok.encode_batch(docs)
        best = min(best, time.perf_counter() - t0)
    single = os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("false", "0")
    print(json.dumps({
        "tokenizer": args.tokenizer,
        "threads": 1 if single else os.cpu_count(),
        "docs": len(docs),
        "bytes": nbytes,
        "tokens": ntok,
        "seconds": round(best, 4),
        "mb_per_s": round(nbytes / best / 1e6, 2),
    }))


if __name__ == "__main__":
    main()
