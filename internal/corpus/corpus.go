// Package corpus embeds shoggo's default pre-training text: the King James
// Bible (public domain), from Debian's bible-kjv package, one verse per line
// (regenerate with scripts/make-corpus.sh).
package corpus

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
)

//go:embed kjv.txt.gz
var kjvGz []byte

// KJV returns the decompressed corpus text.
func KJV() (string, error) {
	r, err := gzip.NewReader(bytes.NewReader(kjvGz))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
