#!/usr/bin/env python3
"""Writes the 3-digit subtraction data set measured in the README:
train.jsonl (4,000 lines) and eval.jsonl (200 held-out lines) in the
current directory, {"instruction": "What is a-b?", "output": "a-b"} with
100 <= b <= a <= 999, no question in both files."""
import json
import random

r = random.Random(3)
seen = set()


def gen(n):
    out = []
    while len(out) < n:
        a, b = r.randint(100, 999), r.randint(100, 999)
        if a < b:
            a, b = b, a
        q = f"What is {a}-{b}?"
        if q in seen:
            continue
        seen.add(q)
        out.append({"instruction": q, "output": str(a - b)})
    return out


for name, n in (("train.jsonl", 4000), ("eval.jsonl", 200)):
    with open(name, "w") as f:
        for e in gen(n):
            f.write(json.dumps(e) + "\n")
