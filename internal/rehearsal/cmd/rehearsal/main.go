// Command rehearsal runs the local upgrade rehearsal (make rehearsal): a PostgreSQL server
// and a simulated cluster, the 1.3-like release on a seeded database, and identity-upgrade
// run against it, reaching the database through a port-forward (-db-host: directly).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/identity-upgrade/identity-upgrade/internal/rehearsal"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func main() {
	binary := flag.String("binary", "bin/identity-upgrade", "the identity-upgrade binary to rehearse with")
	keep := flag.Bool("keep", false, "keep the world running until Ctrl-C")
	dbHost := flag.Bool("db-host", false, "install the release with an external database and give identity-upgrade its address "+
		"(--db-host), instead of the bundled database reached through a port-forward")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := testworld.RepoRoot()
	if err == nil {
		_, err = rehearsal.Run(ctx, rehearsal.Options{Binary: *binary, Root: root, Out: os.Stdout, Keep: *keep, DBHost: *dbHost})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rehearsal: %v\n", err)
		stop()
		os.Exit(1)
	}
}
