package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A small JSON scanner for tokenizer.json. encoding/json spends most of Load's time on the
// vocabulary and merges (hundreds of thousands of small strings), so decodeFile reads those two
// directly and hands every other part, small, to encoding/json.

type jscan struct {
	data []byte
	pos  int
}

func (s *jscan) errorf(format string, args ...any) error {
	line := 1 + strings.Count(string(s.data[:min(s.pos, len(s.data))]), "\n")
	return fmt.Errorf("line %d (offset %d): %s", line, s.pos, fmt.Sprintf(format, args...))
}

func (s *jscan) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *jscan) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jscan) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of JSON, want %q", c)
		}
		return s.errorf("want %q, found %q", c, s.data[s.pos])
	}
	s.pos++
	return nil
}

// str reads a JSON string.
func (s *jscan) str() (string, error) {
	if s.peek() != '"' {
		return "", s.errorf("want a string")
	}
	start := s.pos
	i := s.pos + 1
	escaped := false
	for ; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", s.errorf("control character in string")
		}
		if c == '\\' {
			escaped = true
			i++
		}
	}
	if i >= len(s.data) {
		return "", s.errorf("unterminated string")
	}
	s.pos = i + 1
	body := s.data[start+1 : i]
	if !escaped && utf8.Valid(body) {
		return string(body), nil
	}
	var out string
	if err := json.Unmarshal(s.data[start:i+1], &out); err != nil {
		s.pos = start
		return "", s.errorf("%v", err)
	}
	return out, nil
}

// skip passes over one value and returns its bytes.
func (s *jscan) skip() ([]byte, error) {
	c := s.peek()
	start := s.pos
	switch {
	case c == '"':
		if _, err := s.str(); err != nil {
			return nil, err
		}
	case c == '{' || c == '[':
		depth := 0
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case '"':
				if _, err := s.str(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return s.data[start:s.pos], nil
			}
		}
		return nil, s.errorf("unterminated %q", c)
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'):
		for s.pos < len(s.data) {
			d := s.data[s.pos]
			if !(d == '-' || d == '+' || d == '.' || (d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z')) {
				break
			}
			s.pos++
		}
	default:
		if s.pos >= len(s.data) {
			return nil, s.errorf("unexpected end of JSON")
		}
		return nil, s.errorf("unexpected %q", c)
	}
	return s.data[start:s.pos], nil
}

// object calls f for each key of an object; f must consume the value.
func (s *jscan) object(f func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := f(k); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' in object")
		}
	}
}

// array calls f for each element of an array; f must consume the element.
func (s *jscan) array(f func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := f(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or ']' in array")
		}
	}
}

// id reads a non-negative integer below 2^31.
func (s *jscan) id() (int32, error) {
	s.ws()
	start := s.pos
	var v int64
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		v = v*10 + int64(s.data[s.pos]-'0')
		if v >= 1<<31 {
			return 0, s.errorf("id too large")
		}
		s.pos++
	}
	if s.pos == start || (s.data[start] == '0' && s.pos-start > 1) {
		return 0, s.errorf("want a non-negative integer id")
	}
	if s.pos < len(s.data) {
		if c := s.data[s.pos]; c == '.' || c == 'e' || c == 'E' {
			return 0, s.errorf("want an integer id")
		}
	}
	return int32(v), nil
}

// unmarshalPart decodes a raw part with encoding/json, naming it in errors.
func unmarshalPart(name string, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// decodeFile decodes tokenizer.json into the same structure encoding/json would produce.
func decodeFile(data []byte) (*jsonFile, error) {
	f := &jsonFile{}
	s := &jscan{data: data}
	err := s.object(func(key string) error {
		if key == "model" {
			return s.model(&f.Model)
		}
		raw, err := s.skip()
		if err != nil {
			return err
		}
		switch key {
		case "version":
			return unmarshalPart(key, raw, &f.Version)
		case "truncation":
			f.Truncation = raw
		case "padding":
			f.Padding = raw
		case "added_tokens":
			return unmarshalPart(key, raw, &f.AddedTokens)
		case "normalizer":
			f.Normalizer = nil
			return unmarshalPart(key, raw, &f.Normalizer)
		case "pre_tokenizer":
			f.PreTokenizer = nil
			return unmarshalPart(key, raw, &f.PreTokenizer)
		case "post_processor":
			f.PostProcessor = nil
			return unmarshalPart(key, raw, &f.PostProcessor)
		case "decoder":
			f.Decoder = nil
			return unmarshalPart(key, raw, &f.Decoder)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, s.errorf("data after the top-level object")
	}
	return f, nil
}

func (s *jscan) model(m *jsonModel) error {
	if s.peek() == 'n' {
		_, err := s.skip()
		return err
	}
	return s.object(func(key string) error {
		switch key {
		case "vocab":
			if s.peek() == 'n' {
				_, err := s.skip()
				m.Vocab = nil
				return err
			}
			m.Vocab = make(map[string]int32, len(s.data)/64)
			return s.object(func(tok string) error {
				id, err := s.id()
				if err != nil {
					return fmt.Errorf("model.vocab %q: %w", tok, err)
				}
				m.Vocab[tok] = id
				return nil
			})
		case "merges":
			if s.peek() == 'n' {
				_, err := s.skip()
				m.Merges = nil
				return err
			}
			m.Merges = make([]jsonMerge, 0, len(m.Vocab))
			return s.array(func() error {
				var mg jsonMerge
				switch s.peek() {
				case '"':
					str, err := s.str()
					if err != nil {
						return err
					}
					a, b, ok := strings.Cut(str, " ")
					if !ok || strings.Contains(b, " ") {
						return fmt.Errorf("model.merges[%d]: merge %q is not two tokens separated by one space", len(m.Merges), str)
					}
					mg.a, mg.b = a, b
				case '[':
					var parts []string
					err := s.array(func() error {
						p, err := s.str()
						parts = append(parts, p)
						return err
					})
					if err != nil {
						return err
					}
					if len(parts) != 2 {
						return fmt.Errorf("model.merges[%d]: %d tokens, want 2", len(m.Merges), len(parts))
					}
					mg.a, mg.b, mg.pair = parts[0], parts[1], true
				default:
					return s.errorf("model.merges[%d]: want a string or a pair", len(m.Merges))
				}
				m.Merges = append(m.Merges, mg)
				return nil
			})
		}
		raw, err := s.skip()
		if err != nil {
			return err
		}
		var dst any
		switch key {
		case "type":
			dst = &m.Type
		case "dropout":
			m.Dropout = nil
			dst = &m.Dropout
		case "unk_token":
			m.UnkToken = nil
			dst = &m.UnkToken
		case "continuing_subword_prefix":
			m.ContinuingSubwordPrefix = nil
			dst = &m.ContinuingSubwordPrefix
		case "end_of_word_suffix":
			m.EndOfWordSuffix = nil
			dst = &m.EndOfWordSuffix
		case "fuse_unk":
			dst = &m.FuseUnk
		case "byte_fallback":
			dst = &m.ByteFallback
		case "ignore_merges":
			dst = &m.IgnoreMerges
		default:
			return nil
		}
		return unmarshalPart("model."+key, raw, dst)
	})
}
