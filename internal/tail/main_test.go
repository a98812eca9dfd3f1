package tail

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine of a Tail behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
