// Package align holds the alignment objectives and their data: preference
// pairs (a generator judged programmatically from the embedded tasks), the
// reward model (a scalar head trained with the Bradley–Terry loss) and DPO
// (sigmoid, IPO and hinge losses against cached reference log-probs).
package align

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/shoggo/shoggo/sft/tasks"
)

// Verdict is the programmatic judge's finding on one completion.
type Verdict struct {
	// Correct: the reference answer appears in the completion as a whole
	// (not inside a longer word or number).
	Correct bool
	// Exact: the completion, trimmed of surrounding space, is the answer
	// and nothing else (correct and concise).
	Exact bool
	// Format: one line, no surrounding space beyond a final newline.
	Format bool
	// Length is the completion's length in bytes after trimming.
	Length int
}

// Score orders verdicts: an exact answer 1; a correct answer buried in
// other text 0.5 minus 0.01 per extra byte (at least 0.1); a wrong answer
// 0; a badly formatted completion loses 0.05 more. The correct concise
// answer always scores highest.
func (v Verdict) Score() float64 {
	s := 0.0
	switch {
	case v.Exact:
		s = 1
	case v.Correct:
		s = max(0.1, 0.5-0.01*float64(v.Length))
	}
	if !v.Format {
		s -= 0.05
	}
	return s
}

// Judge compares completion with the reference answer.
func Judge(answer, completion string) Verdict {
	t := strings.TrimSpace(completion)
	v := Verdict{Length: len(t), Exact: t == strings.TrimSpace(answer) && t != ""}
	v.Correct = v.Exact || containsWhole(t, strings.TrimSpace(answer))
	v.Format = !strings.Contains(t, "\n") && strings.TrimRight(completion, "\n") == t
	return v
}

// JudgeTask judges a completion to a question of the embedded tasks (the
// answer is computed from the question); a question of no task is an
// error.
func JudgeTask(question, completion string) (Verdict, error) {
	ans, ok := tasks.Answer(question)
	if !ok {
		return Verdict{}, fmt.Errorf("judge: %q is not a question of the embedded tasks", question)
	}
	return Judge(ans, completion), nil
}

// Prefer returns +1 when the judge prefers a to b as answers to a question
// whose reference answer is answer, -1 when it prefers b, 0 for a tie.
func Prefer(answer, a, b string) int {
	sa, sb := Judge(answer, a).Score(), Judge(answer, b).Score()
	switch {
	case sa > sb:
		return 1
	case sa < sb:
		return -1
	}
	return 0
}

// containsWhole reports whether s contains w bounded on both sides by the
// ends of s or by characters that are not letters or digits.
func containsWhole(s, w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i+len(w) <= len(s); {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		if !wordByte(s, j-1) && !wordByte(s, j+len(w)) {
			return true
		}
		i = j + 1
	}
	return false
}

func wordByte(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	r := rune(s[i])
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}
