// Command shoggo trains, fine-tunes, aligns, quantizes and runs decoder-only
// language models. Run `shoggo help` for the subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary, run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: shoggo <command> [flags]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nrun `shoggo <command> -h` for a command's flags")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "shoggo: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(exitCode(os.Args[1], c.run(os.Args[2:])))
}

// exitCode prints err and returns the process status: 0 for success and
// for -h/--help (flag.ErrHelp: the usage was printed), 1 for an error.
func exitCode(name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "shoggo %s: %v\n", name, err)
	return 1
}
