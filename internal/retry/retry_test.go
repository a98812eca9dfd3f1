package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesUpToItsBoundAndStartsAfresh(t *testing.T) {
	b := Backoff{First: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("pauses = %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 10*time.Millisecond {
		t.Errorf("pause after Reset = %s, want 10ms", d)
	}
}

func TestBackoffZeroValue(t *testing.T) {
	var b Backoff
	if d := b.Next(); d != 100*time.Millisecond {
		t.Errorf("first pause of the zero Backoff = %s, want 100ms", d)
	}
	for range 20 {
		b.Next()
	}
	if d := b.Next(); d != 30*time.Second {
		t.Errorf("pause after many = %s, want the 30s bound", d)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep of an hour on a cancelled context reported that the hour passed")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep of 1ms reported its context ended")
	}
}
