#!/usr/bin/env python3
"""Check that a tokenizer.json trained by shoggo (tokenizer.Train) loads in Hugging Face
`tokenizers` and encodes exactly as the Go tokenizer does.

    reference/.venv/bin/python reference/check_trained_tokenizer.py [--text FILE] [--dir DIR]

Without --dir it runs the Go test TestExportTrainedTokenizer, which trains a vocab-4096
tokenizer on FILE (default: the KJV Bible from `bible -f`, Debian package bible-kjv) and
writes DIR/tokenizer.json and DIR/sample.json (texts with the ids Go produced). The script then
loads tokenizer.json with tokenizers.Tokenizer.from_file and compares ids text by text, and
checks that decode(encode(text)) gives the text back.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_text(tmp):
    path = os.path.join(tmp, "kjv.txt")
    if shutil.which("bible") is None:
        sys.exit("no --text given and `bible` (Debian bible-kjv) not installed")
    with open(path, "w") as f:
        subprocess.run(["bible", "-f", "Genesis 1:1-Revelation 22:21"], stdout=f, check=True,
                       stderr=subprocess.DEVNULL)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", help="training text file")
    ap.add_argument("--dir", help="directory already holding tokenizer.json and sample.json")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shoggo-train-")
    d = args.dir
    if d is None:
        d = tmp
        text = args.text or default_text(tmp)
        env = dict(os.environ, SHOGGO_TRAIN_TEXT=text, SHOGGO_TOKENIZER_EXPORT=d)
        subprocess.run(["go", "test", "./tokenizer/", "-run", "^TestExportTrainedTokenizer$",
                        "-count=1", "-v"], cwd=ROOT, env=env, check=True)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "sample.json")) as f:
        rows = json.load(f)
    bad = 0
    ntok = 0
    for i, r in enumerate(rows):
        want = r["ids"] or []
        ids = tok.encode(r["text"]).ids
        ntok += len(ids)
        if ids != want:
            bad += 1
            if bad <= 5:
                print(f"MISMATCH row {i} {r['text'][:60]!r}\n  python {ids[:40]}\n  go     {want[:40]}")
        if tok.decode(ids, skip_special_tokens=False) != r["text"]:
            bad += 1
            print(f"DECODE MISMATCH row {i} {r['text'][:60]!r}")
    print(f"vocab {tok.get_vocab_size()}; {len(rows)} texts, {ntok} tokens; mismatches: {bad}")
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
