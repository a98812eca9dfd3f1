//go:build !nobench

package main

import "testing"

// TestBenchCountFlags: a count that is not positive is a usage mistake,
// named with its value, before anything runs.
func TestBenchCountFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"zero --endpoints", []string{"bench", "--endpoints", "0"}, "--endpoints 0: want a positive number"},
		{"negative --heartbeats", []string{"bench", "--quick", "--heartbeats", "-5"}, "--heartbeats -5: want a positive number"},
		{"zero --heartbeats-in-flight", []string{"bench", "--heartbeats-in-flight", "0"}, "--heartbeats-in-flight 0: want a positive number"},
		{"negative --contacts", []string{"bench", "--contacts", "-1"}, "--contacts -1: want a positive number"},
		{"negative --writers", []string{"bench", "--quick", "--writers", "-2"}, "--writers -2: want a positive number"},
		{"zero --changes", []string{"bench", "--changes", "0"}, "--changes 0: want a positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oneLineError(t, presence(t, tt.args...), 2, tt.want)
		})
	}
}
