// Package align holds the alignment objectives and their pieces: reward
// functions, rollouts through the batched decoder, GRPO's group-relative
// loss, PPO's value head, GAE, whitening, clipped losses and the adaptive
// KL controller.
package align

import (
	"fmt"
	"strconv"
	"strings"
)

// RewardFn scores one completion (decoded text, without the stop token)
// of a question whose checkable answer is answer.
type RewardFn func(question, completion, answer string) float64

// ExactMatchReward is 1 when the trimmed completion equals the trimmed
// answer (the rule of sft.ExactMatch), else 0.
func ExactMatchReward(_, completion, answer string) float64 {
	if strings.TrimSpace(completion) == strings.TrimSpace(answer) {
		return 1
	}
	return 0
}

// FormatReward is 1 for a completion that is one line without surrounding
// white space or stray characters (the answer's own alphabet: letters,
// digits, ", "), else 0: it checks the shape, not the value.
func FormatReward(_, completion, _ string) float64 {
	if completion == "" || completion != strings.TrimSpace(completion) || strings.ContainsAny(completion, "\n\t") {
		return 0
	}
	for _, r := range completion {
		ok := r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ',' || r == ' ' || r == '-'
		if !ok {
			return 0
		}
	}
	return 1
}

// LengthReward is 1 when the completion is no longer than the answer and
// falls linearly to 0 at three times the answer's length: it prefers the
// concise "4" over rambling.
func LengthReward(_, completion, answer string) float64 {
	n, a := len(strings.TrimSpace(completion)), max(len(strings.TrimSpace(answer)), 1)
	if n <= a {
		return 1
	}
	return max(0, 1-float64(n-a)/float64(2*a))
}

// NumericReward is 1/(1+|got-want|) when both the completion and the
// answer are integers (partial credit for near misses in arithmetic),
// else 0.
func NumericReward(_, completion, answer string) float64 {
	want, err := strconv.Atoi(strings.TrimSpace(answer))
	if err != nil {
		return 0
	}
	got, err := strconv.Atoi(strings.TrimSpace(completion))
	if err != nil {
		return 0
	}
	d := got - want
	if d < 0 {
		d = -d
	}
	return 1 / (1 + float64(d))
}

// rewardFns names the built-in reward functions.
var rewardFns = map[string]RewardFn{"exact-match": ExactMatchReward, "format": FormatReward, "length": LengthReward, "numeric": NumericReward}

// ParseRewardFns parses a comma-separated list of reward functions with
// optional weights ("exact-match", "exact-match,format:0.1,length:0.1")
// into one RewardFn: the weighted sum.
func ParseRewardFns(spec string) (RewardFn, error) {
	type term struct {
		fn RewardFn
		w  float64
	}
	var terms []term
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w := part, 1.0
		if i := strings.IndexByte(part, ':'); i >= 0 {
			name = part[:i]
			if _, err := fmt.Sscanf(part[i+1:], "%g", &w); err != nil {
				return nil, fmt.Errorf("--reward-fn %q: weight of %s: %v", spec, name, err)
			}
		}
		fn, ok := rewardFns[name]
		if !ok {
			return nil, fmt.Errorf("--reward-fn %q: unknown function %q (want exact-match, format, length, numeric)", spec, name)
		}
		terms = append(terms, term{fn, w})
	}
	if len(terms) == 0 {
		return nil, fmt.Errorf("--reward-fn %q: no reward function", spec)
	}
	return func(q, c, a string) float64 {
		var s float64
		for _, t := range terms {
			s += t.w * t.fn(q, c, a)
		}
		return s
	}, nil
}
