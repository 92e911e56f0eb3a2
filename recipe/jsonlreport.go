package recipe

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shoggo/shoggo/data"
)

// maxListedSkips is how many skipped lines readInstructions lists.
const maxListedSkips = 20

// readInstructions reads an instruction JSONL file; with skipInvalid, the
// lines skipped are listed on log with their reasons ("file:line:
// reason", the first maxListedSkips of them) and counted.
func readInstructions(path string, skipInvalid bool, log io.Writer) ([]data.Example, error) {
	exs, skipped, err := data.ReadInstructions(path, skipInvalid)
	if err != nil || skipped == 0 {
		return exs, err
	}
	fmt.Fprintf(log, "%s: skipped %d invalid line(s):\n", path, skipped)
	good := map[int]bool{}
	for _, e := range exs {
		good[e.Line] = true
	}
	f, err := os.Open(path)
	if err != nil {
		return exs, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	listed := 0
	for lineNo := 1; listed < maxListedSkips; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if len(line) == 0 && rerr != nil {
			break
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && !good[lineNo] {
			// the reader's own reason for this one line
			_, _, perr := data.ReadInstructionsFrom(bytes.NewReader(t), path, false)
			reason := "invalid"
			if perr != nil {
				reason = strings.TrimPrefix(perr.Error(), path+":1: ")
				reason = strings.TrimPrefix(reason, path+":1:")
			}
			fmt.Fprintf(log, "  %s:%d: %s\n", path, lineNo, reason)
			listed++
		}
		if rerr != nil {
			break
		}
	}
	if skipped > listed {
		fmt.Fprintf(log, "  ... and %d more\n", skipped-listed)
	}
	return exs, nil
}
