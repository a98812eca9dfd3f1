package engine_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine of the engine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
