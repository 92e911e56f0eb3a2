package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/tokenizer"
)

func init() {
	register("generate", "generate text from an HF model directory (KV-cached; --chat for a ChatML conversation)", runGenerate)
}

func runGenerate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	dir := fs.String("model", "runs/pretrain/model", "HF model directory (config.json, model.safetensors, tokenizer.json)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json (default: the model directory's)")
	prompt := fs.String("prompt", "", "prompt text (default: read from stdin unless --chat)")
	maxNew := fs.Int("max-new-tokens", 128, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "top-k filtering (0: off)")
	topP := fs.Float64("top-p", 0.95, "nucleus filtering (1: off)")
	rep := fs.Float64("repetition-penalty", 1.0, "repetition penalty (1: off)")
	seed := fs.Uint64("seed", 0, "random seed")
	stops := fs.String("stop", "", "comma-separated stop strings")
	chat := fs.Bool("chat", false, "interactive chat using the ChatML template")
	system := fs.String("system", "", "system message for --chat")
	dev := fs.String("device", "", "compute device: "+device.Names)
	finite := fs.Bool("check-finite", false, "refuse a model holding NaN or infinite weights")
	if err := generateChecks(fs, args, finite); err != nil {
		return err
	}
	m, tok, eos, err := recipe.LoadForGeneration(*dir, *tokPath, *dev, os.Stderr)
	if err != nil {
		return err
	}
	opt := decode.Sampling{Temperature: *temp, TopK: *topK, TopP: *topP, RepetitionPenalty: *rep}
	rng := rand.New(rand.NewPCG(*seed, 0xdec0de))
	stopList := splitList(*stops)
	g, err := decode.New(m, 1, 0, tok.Decode)
	if err != nil {
		return err
	}
	if !*chat {
		p, err := promptText(*prompt)
		if err != nil {
			return err
		}
		ids := tok.Encode(p)
		if err := fitsContext(g, ids); err != nil {
			return err
		}
		fmt.Print(p)
		_, err = stream(g, tok, ids, *maxNew, opt, eos, stopList, rng, os.Stdout)
		fmt.Println()
		return err
	}
	imEnd, hasEnd := tok.TokenToID("<|im_end|>")
	if hasEnd {
		stopList = append(stopList, "<|im_end|>")
	}
	var msgs []tokenizer.Message
	if *system != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: *system})
	}
	in := bufio.NewScanner(os.Stdin)
	for {
		fmt.Fprint(os.Stderr, "\n> ")
		if !in.Scan() {
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		if line == "/exit" || line == "/quit" {
			return nil
		}
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: line})
		ids := tok.Encode(tokenizer.ChatML(msgs, true))
		stopID := eos
		if hasEnd {
			stopID = imEnd
		}
		reply, err := stream(g, tok, ids, *maxNew, opt, stopID, stopList, rng, os.Stdout)
		fmt.Println()
		if err != nil {
			return err
		}
		msgs = append(msgs, tokenizer.Message{Role: "assistant", Content: reply})
	}
}

// promptText is p, or all of stdin when p is empty.
func promptText(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	b, err := io.ReadAll(os.Stdin)
	return string(b), err
}

// splitList splits a comma-separated flag value (nil for "").
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// stream decodes the prompt in g's one slot, printing tokens as they
// come, until eos, a stop string, maxNew tokens or a full context.
func stream(g *decode.Decoder, tok *tokenizer.Tokenizer, prompt []int32, maxNew int, opt decode.Sampling, eos int32, stops []string, rng *rand.Rand, w io.Writer) (string, error) {
	if len(prompt) == 0 {
		prompt = []int32{max(eos, 0)}
	}
	if err := fitsContext(g, prompt); err != nil {
		return "", err
	}
	slots, err := g.Add(decode.Request{Prompt: prompt, MaxNewTokens: maxNew, Sampling: opt, Seed: rng.Uint64(), EOS: []int32{eos}, Stops: stops})
	if err != nil {
		return "", err
	}
	defer g.Remove(slots[0])
	printed := 0
	for {
		if _, err := g.Step(); err != nil {
			return "", err
		}
		r := g.Result(slots[0])
		text := r.Text
		if r.Finish != decode.Running {
			if len(text) > printed {
				fmt.Fprint(w, text[printed:])
			}
			return text, nil
		}
		// Print only complete UTF-8 and hold back a possible stop-string prefix.
		safe := len(text)
		for _, s := range stops {
			for k := min(len(s)-1, len(text)); k > 0; k-- {
				if strings.HasSuffix(text, s[:k]) {
					safe = min(safe, len(text)-k)
					break
				}
			}
		}
		for safe > printed && !validUTF8Prefix(text[:safe]) {
			safe--
		}
		if safe > printed {
			fmt.Fprint(w, text[printed:safe])
			printed = safe
		}
	}
}

func validUTF8Prefix(s string) bool {
	return len(s) == 0 || strings.ToValidUTF8(s, "\uFFFD") == s
}

// generateChecks parses args and refuses extra arguments, out-of-range
// sampling flags and (--check-finite) non-finite weights.
func generateChecks(fs *flag.FlagSet, args []string, finite *bool) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *finite {
		if err := checkFinite(fs.Lookup("model").Value.String()); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	return checkBounds(fs, atLeast("max-new-tokens", 1), atLeast("temperature", 0, "0: greedy"), atLeast("top-k", 0, "0: off"),
		within("top-p", 0, 1, true, false, "1: off"), above("repetition-penalty", 0, "1: off"))
}

// fitsContext refuses a prompt that leaves no room in the context.
func fitsContext(g *decode.Decoder, ids []int32) error {
	if len(ids) >= g.MaxT() {
		return fmt.Errorf("prompt of %d tokens does not fit the context of %d (max_position_embeddings)", len(ids), g.MaxT())
	}
	return nil
}
