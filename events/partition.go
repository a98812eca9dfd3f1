package events

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Partitions of the log (DESIGN.md section 6). Each contact belongs to one of
// P partitions, by a hash of its ID fixed for ever; P is fixed when the log is
// created. With one partition the log is LogStream itself, written directly.
// With P > 1 each partition is a stream of its own (PartitionStream), written
// by its owner alone, and LogStream sources them all: the server interleaves
// the partitions into one order, the same for every reader, in which the fold,
// the feed and the audit read the log as with one partition. Each sourced
// event keeps, in its SourceHeader, the partition stream and its sequence
// there: the contact's own positions (a set's seq, self's min_seq) are
// sequences of its partition.

// MaxPartitions bounds P: more partitions than engines to own them or servers
// to lead them buy nothing, and each costs a stream.
const MaxPartitions = 64

// PartitionPrefix begins the name of each partition's stream when P > 1.
const PartitionPrefix = LogStream + "_PART_"

// SourceHeader is the header the server gives an event it sources from a
// partition into LogStream: the partition stream's name and the event's
// sequence there, then what it need not know.
const SourceHeader = "Nats-Stream-Source"

// ValidatePartitions checks a partition count.
func ValidatePartitions(n int) error {
	if n < 1 || n > MaxPartitions {
		return &ValueError{Field: "partitions", Value: strconv.Itoa(n),
			Reason: fmt.Sprintf("it must be from 1 to %d", MaxPartitions)}
	}
	return nil
}

// Partition returns the partition of n that contact belongs to: FNV-1a of
// its ID, modulo n. It never changes: a contact's events stay in one
// partition, and so in order.
func Partition(contact string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(contact))
	return int(h.Sum32() % uint32(n))
}

// PartitionStream returns the name of partition p's stream, of n.
func PartitionStream(p, n int) string {
	if n <= 1 {
		return LogStream
	}
	return PartitionPrefix + strconv.Itoa(p)
}

// PartitionFilter returns the subjects of partition p's stream, of n.
func PartitionFilter(p, n int) string {
	if n <= 1 {
		return EventsPrefix + ">"
	}
	return EventsPrefix + strconv.Itoa(p) + ".*"
}

// PartitionSubject returns the subject a contact's events are appended to
// when the log has n partitions: in LogStream they read EventSubject.
func PartitionSubject(contact string, n int) string {
	if n <= 1 {
		return EventSubject(contact)
	}
	return EventsPrefix + strconv.Itoa(Partition(contact, n)) + "." + Token(contact)
}

// Origin returns the partition and the sequence in it of the event at seq in
// LogStream, whose SourceHeader is source: with one partition (no header),
// partition 0 and seq itself.
func Origin(source string, seq uint64) (partition int, partSeq uint64, err error) {
	if source == "" {
		return 0, seq, nil
	}
	fields := strings.Fields(source)
	if len(fields) >= 2 {
		name, _, _ := strings.Cut(fields[0], ":") // a server may add ":<hash>"
		if ps, ok := strings.CutPrefix(name, PartitionPrefix); ok {
			p, perr := strconv.Atoi(ps)
			s, serr := strconv.ParseUint(fields[1], 10, 64)
			if perr == nil && serr == nil && p >= 0 && p < MaxPartitions && s > 0 {
				return p, s, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("log seq %d: %s %q names no partition and sequence", seq, SourceHeader, source)
}
