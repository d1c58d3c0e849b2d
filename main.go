// Command identity-upgrade upgrades a Helm release of the Alfresco Identity Service (Keycloak on
// PostgreSQL) safely. It is both a GitHub container action and a CLI; see internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/identity-upgrade/identity-upgrade/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
