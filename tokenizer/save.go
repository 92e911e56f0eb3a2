package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shoggo/shoggo/internal/atomicfile"
)

// Save writes the tokenizer as a Hugging Face tokenizer.json (vocabulary in id order, merges
// in rank order) through a temporary file and a rename, so a crash never leaves half a file.
func (t *Tokenizer) Save(path string) error {
	data, _ := t.MarshalJSON()
	return writeFileAtomic(path, data)
}

// MarshalJSON returns the tokenizer.json content (Save's format). It never fails.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, a := range t.added {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n    {\"id\": %d, \"content\": %s, \"single_word\": %v, \"lstrip\": %v, \"rstrip\": %v, \"normalized\": %v, \"special\": %v}",
			a.ID, jsonString(a.Content), a.SingleWord, a.LStrip, a.RStrip, a.Normalized, a.Special)
	}
	if len(t.added) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("],\n  \"normalizer\": ")
	if t.nfc {
		b.WriteString(`{"type": "NFC"}`)
	} else {
		b.WriteString("null")
	}
	b.WriteString(",\n  \"pre_tokenizer\": ")
	if t.useRegex {
		fmt.Fprintf(&b, `{"type": "ByteLevel", "add_prefix_space": %v, "trim_offsets": true, "use_regex": true}`, t.prefixSpace == prefixSegment)
	} else {
		fmt.Fprintf(&b, `{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": %s}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": %v, "trim_offsets": false, "use_regex": false}]}`,
			jsonString(t.pre.pattern), t.prefixSpace == prefixPiece)
	}
	b.WriteString(",\n  \"post_processor\": ")
	if t.postByte {
		b.WriteString(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`)
	} else {
		b.WriteString("null")
	}
	b.WriteString(",\n  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n")
	b.WriteString("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ")
	if t.unkID >= 0 {
		b.WriteString(jsonString(t.tokens[t.unkID]))
	} else {
		b.WriteString("null")
	}
	fmt.Fprintf(&b, ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": %v,\n    \"byte_fallback\": false,\n    \"ignore_merges\": %v,\n    \"vocab\": {",
		t.fuseUnk, t.ignoreMerge)
	first := true
	for id, tok := range t.tokens {
		if t.bytesOf[id] == nil {
			continue
		}
		if _, added := t.addedByID[int32(id)]; added {
			if _, inVocab := t.vocab[tok]; !inVocab {
				continue
			}
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString("\n      ")
		b.WriteString(jsonString(tok))
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(id))
	}
	b.WriteString("\n    },\n    \"merges\": [")
	pairs := t.mergePairs
	for _, m := range t.mergeList {
		if strings.Contains(t.tokens[m[0]], " ") || strings.Contains(t.tokens[m[1]], " ") {
			pairs = true
		}
	}
	for i, m := range t.mergeList {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		if pairs {
			b.WriteString("[" + jsonString(t.tokens[m[0]]) + ", " + jsonString(t.tokens[m[1]]) + "]")
		} else {
			b.WriteString(jsonString(t.tokens[m[0]] + " " + t.tokens[m[1]]))
		}
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// jsonString quotes s for JSON, keeping non-ASCII characters as they are.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				fmt.Fprintf(&b, `\u%04x`, c)
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString(`\ufffd`)
		} else if r == 0x2028 || r == 0x2029 {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
	return b.String()
}

// writeFileAtomic writes data to path atomically (internal/atomicfile), mode 0644.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}

// SaveConfig writes a minimal tokenizer_config.json next to a saved tokenizer.json: the
// eos/bos/pad tokens, and the ChatML chat template when the vocabulary has <|im_start|> and
// <|im_end|>. Loading the pair back (Load) restores EOS, BOS and PAD.
func (t *Tokenizer) SaveConfig(path string) error {
	cfg := map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"clean_up_tokenization_spaces": false,
		"model_max_length":             1 << 30,
	}
	for _, f := range []struct {
		name string
		id   int32
	}{{"eos_token", t.eos}, {"bos_token", t.bos}, {"pad_token", t.pad}} {
		if s, ok := t.IDToToken(f.id); ok {
			cfg[f.name] = s
		} else {
			cfg[f.name] = nil
		}
	}
	_, ok1 := t.TokenToID("<|im_start|>")
	_, ok2 := t.TokenToID("<|im_end|>")
	if ok1 && ok2 {
		cfg["chat_template"] = ChatMLTemplate
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes())
}
