//go:build nobench

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newBench, in a build without the benchmark (-tags nobench, as the
// container image is built), says where it is.
func newBench() *cobra.Command {
	return &cobra.Command{
		Use:                "bench",
		Short:              "Not in this build (built with -tags nobench); see docs/bench.md",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("this presence was built without the benchmark (-tags nobench, as the container image is): run it from a clone, go run ./cmd/presence bench")}
		},
	}
}
