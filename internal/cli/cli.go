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
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/version"
)

// The exit codes are rollout's (rollout.ExitOK, ExitRolledBack, ExitRefused, ExitNeedsHuman),
// the same for every subcommand and for the action.

// Run runs identity-upgrade with the arguments after the program name and returns the exit code.
// With no arguments and GITHUB_ACTIONS=true it runs as the action: the subcommand of the command
// input (default upgrade), inputs from INPUT_<NAME>; then every exit, a refusal of the inputs included, sets the step's outputs and
// writes the job summary and an annotation.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		if getenv("GITHUB_ACTIONS") == "true" {
			return run(ctx, config.FromAction(getenv), getenv, stdout, stderr)
		}
		writeHelp(stderr)
		return rollout.ExitRefused
	}

	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			return Run(ctx, []string{rest[0], "--help"}, getenv, stdout, stderr)
		}
		writeHelp(stdout)
		return rollout.ExitOK
	case "version", "--version":
		return runVersion(rest, stdout, stderr)
	}

	cmd, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "identity-upgrade: unknown subcommand %s\nRun 'identity-upgrade --help' for the subcommands.\n", shorten(name))
		return rollout.ExitRefused
	}
	cfg, err := config.FromFlags(cmd.name, rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		writeCommandHelp(stdout, cmd)
		return rollout.ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade %v\nRun 'identity-upgrade %s --help' for its flags.\n", err, cmd.name)
		return rollout.ExitRefused
	}
	return run(ctx, cfg, getenv, stdout, stderr)
}

// run validates the configuration and runs its subcommand. Results go to stdout (backup's last
// line is the bundle location); logs and problems go to stderr.
func run(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer) int {
	started := time.Now()
	var act *ghaction.Action
	if cfg.Action {
		// Masks go first: nothing may be logged before GitHub knows the secrets.
		act = ghaction.New(getenv, stdout)
		act.Mask(cfg.Secrets()...)
	}
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
		return refuse(act, invalidInput(cfg, started, err), stderr)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	// One short line says what the run does; the whole configuration, redacted, is for Debug.
	logger.InfoContext(ctx, "starting", startAttrs(cfg)...)
	logger.DebugContext(ctx, "configuration", "config", cfg)
	switch cfg.Command {
	case config.CmdPlan:
		return runPlan(ctx, cfg, getenv, stdout, stderr, logger, act)
	case config.CmdBackup:
		return runBackup(ctx, cfg, getenv, stdout, stderr, logger, act)
	case config.CmdRestore:
		return runRestore(ctx, cfg, getenv, stdout, stderr, logger, act)
	case config.CmdInspect:
		return runInspect(ctx, cfg, getenv, stdout, stderr, logger, act)
	case config.CmdUpgrade, config.CmdRecover, config.CmdRehearse:
		return runUpgrade(ctx, cfg, getenv, stdout, stderr, logger, act)
	}
	fmt.Fprintf(stderr, "identity-upgrade: unknown command %s\n", cfg.Command)
	return refuse(act, rollout.Refusal("", "", started, fmt.Errorf("unknown command %s", shorten(cfg.Command))), stderr)
}

// invalidInput is the report of a run whose inputs did not validate: refused, every problem on
// a line of its own, each naming its input. The release is named only when its inputs are valid.
func invalidInput(cfg *config.Config, started time.Time, err error) *rollout.Report {
	release, namespace := cfg.ReleaseName, cfg.Namespace
	for _, p := range config.Problems(err) {
		if ie, ok := errors.AsType[*config.InputError](p); ok && (ie.Input == "release-name" || ie.Input == "namespace") {
			release, namespace = "", ""
		}
	}
	return rollout.Refusal(release, namespace, started, fmt.Errorf("invalid input: %w", err))
}

// refuse ends a run refused before its pipeline started, which the caller has already told on
// stderr: as an action it writes the annotation, the outputs and the job summary. Exit 2.
func refuse(act *ghaction.Action, rep *rollout.Report, stderr io.Writer) int {
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// failed ends a backup or restore that failed for a cause outside its inputs, having changed
// nothing, which the caller has already told on stderr: as an action it writes the
// annotation, the outputs and the job summary. Exit 1.
func failed(act *ghaction.Action, rep *rollout.Report, stderr io.Writer) int {
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// finish ends a run with its report: the report's text on stdout and, as an action, the
// annotation, the outputs and the job summary. The exit code is the report's whatever the
// writing does: a failure to write is a warning on stderr.
func finish(act *ghaction.Action, rep *rollout.Report, stdout, stderr io.Writer) int {
	warn(stderr, "write the report", rep.WriteText(stdout))
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// report writes a report as the action's annotation, outputs and job summary.
func report(act *ghaction.Action, rep *rollout.Report, stderr io.Writer) {
	act.Error(rep)
	warn(stderr, "write the step's outputs", act.Outputs(rep))
	warn(stderr, "write the job summary", act.Summary(rep))
}

// warn tells of an error on stderr, as a warning that changes no exit code.
func warn(stderr io.Writer, what string, err error) {
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade: warning: %s: %v\n", what, err)
	}
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, "Usage: identity-upgrade version\n\nPrints the version of identity-upgrade, the Go version it was built with, and the platform.")
		return rollout.ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "identity-upgrade version: %v\n", err)
		return rollout.ExitRefused
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "identity-upgrade version: unexpected argument %s\n", shorten(fs.Arg(0)))
		return rollout.ExitRefused
	}
	fmt.Fprintln(stdout, version.String())
	return rollout.ExitOK
}

// shorten quotes a word from the command line for a message, cut to a readable length.
func shorten(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
