package client_test

import (
	"testing"

	"github.com/presence-engine/presence/internal/fuzzbrief"
)

// TestFuzzBriefly runs every fuzz target of this package for a short while
// (PRESENCE_FUZZTIME each, 0 or -short to skip): see package fuzzbrief.
func TestFuzzBriefly(t *testing.T) {
	fuzzbrief.Run(t, "github.com/presence-engine/presence/client")
}
