package engine

import (
	"fmt"
	"strings"
	"time"
)

// Sync is how the embedded server makes the log durable: fsync after every write
// (Always), or every Interval. Acknowledged events survive a crash of the
// process either way (they are in the OS's page cache when the ack is sent);
// what a power loss can take is the last Interval of them, or nothing with Always.
type Sync struct {
	Always   bool
	Interval time.Duration
}

// DefaultSync is an fsync every 100ms: a power loss loses at most the last
// ~100ms of acknowledged sets, at a cost in append throughput within the noise of
// the 2-minute default (see the README for the figures). JetStream's own
// default, 2 minutes, is far too long for a presence log; Always costs ~7x.
var DefaultSync = Sync{Interval: 100 * time.Millisecond}

func (s Sync) interval() time.Duration {
	if s.Always || s.Interval <= 0 {
		return DefaultSync.Interval
	}
	return s.Interval
}

// String returns "always" or the interval.
func (s Sync) String() string {
	if s.Always {
		return "always"
	}
	return s.interval().String()
}

// ParseSync parses "always" or a duration ("100ms", "1s").
func ParseSync(text string) (Sync, error) {
	if strings.EqualFold(text, "always") {
		return Sync{Always: true}, nil
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return Sync{}, fmt.Errorf("sync %q: want \"always\" or a positive duration such as 100ms or 1s", text)
	}
	return Sync{Interval: d}, nil
}
