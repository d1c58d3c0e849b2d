// Package cli is the command line of identity-upgrade: it picks the subcommand, reads the
// configuration from flags or, as a GitHub Action, from INPUT_<NAME>, and maps the outcome to
// an exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/version"
)

// Exit codes of identity-upgrade.
const (
	ExitOK         = 0 // upgraded, or nothing to do
	ExitFailed     = 1 // failed, and the release and database were rolled back cleanly
	ExitInvalid    = 2 // invalid input or preflight refused; nothing was touched
	ExitNeedsHuman = 3 // failed and could not restore; the summary says what state things are in
)

// Run runs identity-upgrade with the arguments after the program name and returns the exit code.
// With no arguments and GITHUB_ACTIONS=true it runs as the action: upgrade, inputs from
// INPUT_<NAME>.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		if getenv("GITHUB_ACTIONS") == "true" {
			return run(ctx, config.FromAction(getenv), getenv, stdout, stderr)
		}
		writeHelp(stderr)
		return ExitInvalid
	}

	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			return Run(ctx, []string{rest[0], "--help"}, getenv, stdout, stderr)
		}
		writeHelp(stdout)
		return ExitOK
	case "version", "--version":
		return runVersion(rest, stdout, stderr)
	}

	cmd, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "identity-upgrade: unknown subcommand %s\nRun 'identity-upgrade --help' for the subcommands.\n", shorten(name))
		return ExitInvalid
	}
	cfg, err := config.FromFlags(cmd.name, rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		writeCommandHelp(stdout, cmd)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade %v\nRun 'identity-upgrade %s --help' for its flags.\n", err, cmd.name)
		return ExitInvalid
	}
	return run(ctx, cfg, getenv, stdout, stderr)
}

// run validates the configuration and runs its subcommand. Results go to stdout (backup's last
// line is the bundle location); logs and problems go to stderr.
func run(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer) int {
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "identity-upgrade %s: invalid input; nothing was changed:\n", cfg.Command)
		for _, p := range config.Problems(err) {
			fmt.Fprintf(stderr, "  - %v\n", p)
		}
		if cfg.Action {
			fmt.Fprintln(stderr, "Fix the inputs in the step's 'with:' block (see action.yml).")
		} else {
			fmt.Fprintf(stderr, "Run 'identity-upgrade %s --help' for its flags.\n", cfg.Command)
		}
		return ExitInvalid
	}

	var act *ghaction.Action
	if cfg.Action {
		// Masks go first: nothing may be logged before GitHub knows the secrets.
		act = ghaction.New(getenv, stdout)
		act.Mask(cfg.Secrets()...)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	logger.InfoContext(ctx, "configuration", "config", cfg)
	switch cfg.Command {
	case config.CmdPlan:
		return runPlan(ctx, cfg, getenv, stdout, stderr, logger)
	case config.CmdBackup:
		return runBackup(ctx, cfg, getenv, stdout, stderr, logger)
	case config.CmdRestore:
		return runRestore(ctx, cfg, getenv, stdout, stderr, logger)
	case config.CmdUpgrade:
		return runUpgrade(ctx, cfg, getenv, stdout, stderr, logger, act)
	}
	fmt.Fprintf(stderr, "identity-upgrade: unknown command %s\n", cfg.Command)
	return ExitInvalid
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, "Usage: identity-upgrade version\n\nPrints the version of identity-upgrade, the Go version it was built with, and the platform.")
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "identity-upgrade version: %v\n", err)
		return ExitInvalid
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "identity-upgrade version: unexpected argument %s\n", shorten(fs.Arg(0)))
		return ExitInvalid
	}
	fmt.Fprintln(stdout, version.String())
	return ExitOK
}

// shorten quotes a word from the command line for a message, cut to a readable length.
func shorten(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
