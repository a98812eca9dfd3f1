package fuzzbrief

import "testing"

func TestDeadlineRace(t *testing.T) {
	for _, tt := range []struct {
		name, out string
		race      bool
	}{
		{"the coordinator's deadline", "fuzz: elapsed: 3s, execs: 77878 (0/sec), new interesting: 62 (total: 73)\n" +
			"--- FAIL: FuzzDecodeChange (3.02s)\n    context deadline exceeded\nFAIL\n", true},
		{"a failing input", "fuzz: minimizing 46-byte failing input file\n--- FAIL: FuzzX (0.07s)\n    --- FAIL: FuzzX (0.00s)\n" +
			"        x_test.go:9: found \"q000\"\n    \n    Failing input written to testdata/fuzz/FuzzX/977db1be9c47e640\n" +
			"    To re-run:\n    go test -run=FuzzX/977db1be9c47e640\nFAIL\n", false},
		{"a seed that fails", "failure while testing seed corpus entry: FuzzX/977db1be9c47e640\n" +
			"--- FAIL: FuzzX (0.04s)\n    --- FAIL: FuzzX (0.00s)\n        x_test.go:9: found \"q000\"\n    \nFAIL\n", false},
		{"a target that times out itself", "--- FAIL: FuzzX (3.00s)\n    --- FAIL: FuzzX (0.00s)\n        x_test.go:9: context deadline exceeded\n" +
			"    context deadline exceeded\nFAIL\n", false},
	} {
		if got := DeadlineRace([]byte(tt.out)); got != tt.race {
			t.Errorf("%s: DeadlineRace = %v, want %v", tt.name, got, tt.race)
		}
	}
}
