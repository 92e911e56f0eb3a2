package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// recipeArg finds --recipe FILE before flag parsing, so the recipe's values
// become defaults that explicit flags override.
func recipeArg(args []string) string {
	for i, a := range args {
		for _, p := range []string{"-recipe", "--recipe"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v
			}
		}
	}
	return ""
}

// loadRecipe decodes the --recipe YAML file named in args, if any, into dst
// (unknown keys are errors), before flags are parsed so flags override it.
func loadRecipe(args []string, dst any) error {
	p := recipeArg(args)
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// hasFlag reports whether args set the flag called name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// recipeKeys are the top-level keys the --recipe file sets (none without
// one, or when it cannot be read: loadRecipe reports that).
func recipeKeys(args []string) map[string]bool {
	keys := map[string]bool{}
	p := recipeArg(args)
	if p == "" {
		return keys
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return keys
	}
	var m map[string]any
	if yaml.Unmarshal(b, &m) == nil {
		for k := range m {
			keys[k] = true
		}
	}
	return keys
}
