// Command genaction writes the inputs of action.yml from the table of inputs in package
// config: `go generate ./internal/config` after a change to the table.
package main

import (
	"fmt"
	"os"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genaction path/to/action.yml")
		os.Exit(2)
	}
	path := os.Args[1]
	old, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genaction:", err)
		os.Exit(1)
	}
	data, err := config.ReplaceActionYAMLInputs(old)
	if err != nil {
		fmt.Fprintf(os.Stderr, "genaction: %s: %v\n", path, err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genaction:", err)
		os.Exit(1)
	}
}
