package config

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

//go:generate go run ./genaction ../../action.yml

// ActionYAMLInputs is the inputs section of action.yml as the table of inputs makes it: every
// action input (the CLI-only flags left out), with its description, its default (GitHub passes
// every input's default to the container, so each has one, empty or not) and required, in table
// order, with a comment line per group.
func ActionYAMLInputs() []byte {
	var b bytes.Buffer
	b.WriteString("inputs:\n")
	group := ""
	for i, in := range Inputs() {
		if in.Group != group && i > 0 {
			fmt.Fprintf(&b, "\n  # %s\n", in.Group)
		}
		group = in.Group
		fmt.Fprintf(&b, "  %s:\n    description: %s\n    required: %t\n    default: %s\n",
			in.Name, strconv.Quote(in.Description), in.Required, strconv.Quote(in.Default))
	}
	return b.Bytes()
}

// ReplaceActionYAMLInputs returns action.yml's text with its inputs section (from the line
// "inputs:" to the blank line before "outputs:") made anew from the table.
func ReplaceActionYAMLInputs(action []byte) ([]byte, error) {
	start := bytes.Index(action, []byte("\ninputs:\n"))
	end := bytes.Index(action, []byte("\n\noutputs:\n"))
	if start < 0 || end < start {
		return nil, errors.New(`action.yml has no "inputs:" section followed by a blank line and "outputs:"`)
	}
	var out bytes.Buffer
	out.Write(action[:start+1])
	out.Write(ActionYAMLInputs())
	out.Write(action[end+1:])
	return out.Bytes(), nil
}
