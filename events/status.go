package events

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Status is a contact's presence state. Its values are those of MISTATUS in the
// Office Communicator 2007 SDK (msgrua.h), so a numeric status means the same thing
// here as it does there. A Status is a plain value, safe for concurrent use.
type Status uint16

// The MISTATUS states, with their SDK values.
const (
	Unknown                  Status = 0x0000 // never seen; nobody may set it
	Offline                  Status = 0x0001
	Online                   Status = 0x0002
	Invisible                Status = 0x0006 // shown to everyone but the contact as Offline
	Busy                     Status = 0x000A
	BeRightBack              Status = 0x000E
	Idle                     Status = 0x0012 // automatic, from inactivity
	Away                     Status = 0x0022
	OnThePhone               Status = 0x0032
	OutToLunch               Status = 0x0042
	InAMeeting               Status = 0x0052
	OutOfOffice              Status = 0x0062
	DoNotDisturb             Status = 0x0072
	InAConference            Status = 0x0082
	AllowUrgentInterruptions Status = 0x0092
	MayBeAvailable           Status = 0x00A2
	Custom                   Status = 0x00B2

	// The local states describe a client's own connection and are never part of
	// the protocol: no write path accepts them.
	LocalFindingServer           Status = 0x0100
	LocalConnectingToServer      Status = 0x0200
	LocalSynchronizingWithServer Status = 0x0300
	LocalDisconnectingFromServer Status = 0x0400
)

// onlineBit is the common factor of every connected state.
const onlineBit = 0x0002

type statusInfo struct {
	status   Status
	name     string // canonical name
	constant string // MISTATUS_* name
}

// statuses lists every MISTATUS state in value order.
var statuses = []statusInfo{
	{Unknown, "unknown", "MISTATUS_UNKNOWN"},
	{Offline, "offline", "MISTATUS_OFFLINE"},
	{Online, "online", "MISTATUS_ONLINE"},
	{Invisible, "invisible", "MISTATUS_INVISIBLE"},
	{Busy, "busy", "MISTATUS_BUSY"},
	{BeRightBack, "be-right-back", "MISTATUS_BE_RIGHT_BACK"},
	{Idle, "idle", "MISTATUS_IDLE"},
	{Away, "away", "MISTATUS_AWAY"},
	{OnThePhone, "on-the-phone", "MISTATUS_ON_THE_PHONE"},
	{OutToLunch, "out-to-lunch", "MISTATUS_OUT_TO_LUNCH"},
	{InAMeeting, "in-a-meeting", "MISTATUS_IN_A_MEETING"},
	{OutOfOffice, "out-of-office", "MISTATUS_OUT_OF_OFFICE"},
	{DoNotDisturb, "do-not-disturb", "MISTATUS_DO_NOT_DISTURB"},
	{InAConference, "in-a-conference", "MISTATUS_IN_A_CONFERENCE"},
	{AllowUrgentInterruptions, "allow-urgent-interruptions", "MISTATUS_ALLOW_URGENT_INTERRUPTIONS"},
	{MayBeAvailable, "may-be-available", "MISTATUS_MAY_BE_AVAILABLE"},
	{Custom, "custom", "MISTATUS_CUSTOM"},
	{LocalFindingServer, "local-finding-server", "MISTATUS_LOCAL_FINDING_SERVER"},
	{LocalConnectingToServer, "local-connecting-to-server", "MISTATUS_LOCAL_CONNECTING_TO_SERVER"},
	{LocalSynchronizingWithServer, "local-synchronizing-with-server", "MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVER"},
	{LocalDisconnectingFromServer, "local-disconnecting-from-server", "MISTATUS_LOCAL_DISCONNECTING_FROM_SERVER"},
}

var (
	byValue = make(map[Status]statusInfo, len(statuses))
	byName  = make(map[string]Status, 2*len(statuses))
	// lowNames holds the canonical names of the states below 0x100 by value, ""
	// for a value that is none; namesByLen holds the keys of byName by length.
	// Both serve the codec's lookups, without hashing.
	lowNames   [0x100]string
	namesByLen [maxNameLen + 1][]namedStatus
)

type namedStatus struct {
	name   string
	status Status
}

// maxNameLen is the length of the longest key of byName.
const maxNameLen = len("mistatus_local_synchronizing_with_server")

func init() {
	for _, s := range statuses {
		byValue[s.status] = s
		byName[s.name] = s.status
		byName[strings.ToLower(s.constant)] = s.status
		if s.status < 0x100 {
			lowNames[s.status] = s.name
		}
	}
	for name, s := range byName {
		namesByLen[len(name)] = append(namesByLen[len(name)], namedStatus{name, s})
	}
}

// name returns the canonical name of s and whether s is a MISTATUS state.
func (s Status) name() (string, bool) {
	if s < 0x100 {
		n := lowNames[s]
		return n, n != ""
	}
	info, ok := byValue[s]
	return info.name, ok
}

// lookupName returns the status whose canonical or constant name text is,
// without regard to case: the names ParseStatus matches, without allocating
// for ASCII text.
func lookupName[T string | []byte](text T) (Status, bool) {
	var buf [maxNameLen]byte
	for i := range len(text) {
		c := text[i]
		if c >= utf8.RuneSelf {
			// Lowering can shorten the text ("K" is 3 bytes, "k" one): no
			// length check before this.
			s, ok := byName[strings.ToLower(string(text))]
			return s, ok
		}
		if i < len(buf) {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
	}
	if len(text) > len(buf) {
		return Unknown, false
	}
	for _, n := range namesByLen[len(text)] {
		if n.name == string(buf[:len(text)]) {
			return n.status, true
		}
	}
	return Unknown, false
}

// Statuses returns every MISTATUS state in value order, the local-only ones and
// Unknown included.
func Statuses() []Status {
	out := make([]Status, len(statuses))
	for i, s := range statuses {
		out[i] = s.status
	}
	return out
}

// String returns the canonical name ("be-right-back"), or "0x...." for a value
// that is not a MISTATUS state.
func (s Status) String() string {
	if name, ok := s.name(); ok {
		return name
	}
	return fmt.Sprintf("0x%04X", uint16(s))
}

// Constant returns the SDK constant name ("MISTATUS_BE_RIGHT_BACK"), or "" for a
// value that is not a MISTATUS state.
func (s Status) Constant() string {
	return byValue[s].constant
}

// Code returns the numeric MISTATUS value.
func (s Status) Code() int { return int(s) }

// Valid reports whether s is one of the MISTATUS states.
func (s Status) Valid() bool {
	_, ok := s.name()
	return ok
}

// Local reports whether s is one of the local-only states, which describe a client's
// own connection and are never part of the protocol.
func (s Status) Local() bool { return s >= LocalFindingServer }

// Visible returns the status as everyone but the contact sees it: Invisible reads as
// Offline, every other status as itself. Every path that faces a subscriber masks
// through this method.
func (s Status) Visible() Status {
	if s == Invisible {
		return Offline
	}
	return s
}

// IsOnline reports whether the contact appears connected to others: the common
// factor 0x2 of every online MISTATUS state, tested on the visible status, so an
// invisible contact is not online.
func (s Status) IsOnline() bool {
	v := s.Visible()
	return v.Valid() && !v.Local() && v&onlineBit != 0
}

// VisibleChange reports whether a change from previous to next can be seen by
// anyone but the contact, which is when their visible statuses differ. Offline to
// invisible and back are not visible; unknown to invisible is, as unknown to offline.
func VisibleChange(previous, next Status) bool {
	return previous.Visible() != next.Visible()
}

// SettableStatuses returns the statuses some client may set (with the right
// cause), in value order: all but Unknown and the local-only states.
func SettableStatuses() []Status {
	var out []Status
	for _, s := range statuses {
		if s.status.Settable(CauseEndpoint) == nil {
			out = append(out, s.status)
		}
	}
	return out
}

// acceptedStatuses describes every accepted spelling, for error messages.
func acceptedStatuses() string {
	var names []string
	for _, s := range SettableStatuses() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ") +
		" (or their MISTATUS_* constant names, or their values in decimal or 0x hex)"
}

// ParseStatus parses a status given by canonical name ("away"), MISTATUS constant
// name ("MISTATUS_AWAY") or numeric value in decimal ("34") or hex ("0x22"). Names
// are matched without regard to case. It accepts every MISTATUS state, Unknown and
// the local-only ones included: whether a status may be written is Settable's call.
func ParseStatus(text string) (Status, error) {
	in := strings.TrimSpace(text)
	if s, ok := lookupName(in); ok {
		return s, nil
	}
	if in != "" && (in[0] >= '0' && in[0] <= '9') {
		var n uint64
		var err error
		if len(in) > 2 && (in[:2] == "0x" || in[:2] == "0X") {
			n, err = strconv.ParseUint(in[2:], 16, 16)
		} else {
			n, err = strconv.ParseUint(in, 10, 16)
		}
		if err == nil {
			if s := Status(n); s.Valid() {
				return s, nil
			}
		}
	}
	return Unknown, &StatusError{Input: quote(text), Err: ErrUnknownStatus,
		Reason: "accepted: " + acceptedStatuses()}
}

// Settable reports, as an error naming the status and the reason, whether s may be
// written with the given cause. Unknown and the local-only states are never
// settable; Idle is automatic and is set by an endpoint or the engine, not by a
// user's choice.
func (s Status) Settable(cause Cause) error {
	switch {
	case s == Unknown:
		return &StatusError{Input: s.describe(), Err: ErrNotSettable,
			Reason: "it is what a never-seen contact reads as"}
	case !s.Valid():
		return &StatusError{Input: s.describe(), Err: ErrUnknownStatus,
			Reason: "accepted: " + acceptedStatuses()}
	case s.Local():
		return &StatusError{Input: s.describe(), Err: ErrNotSettable,
			Reason: "local-only states describe a client's own connection and are never part of the protocol"}
	case s == Idle && cause == CauseUser:
		return &StatusError{Input: s.describe(), Err: ErrNotSettable,
			Reason: `idle is automatic, from inactivity: an endpoint (a client's inactivity timer) sets it with cause "endpoint"`}
	}
	return nil
}

func (s Status) describe() string {
	return fmt.Sprintf("%s (0x%04X)", s, uint16(s))
}

// MarshalText encodes the canonical name.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, &StatusError{Input: s.describe(), Err: ErrUnknownStatus, Reason: "not a MISTATUS value"}
	}
	return []byte(s.String()), nil
}

// UnmarshalText accepts everything ParseStatus does.
func (s *Status) UnmarshalText(text []byte) error {
	v, err := ParseStatus(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalJSON accepts a JSON string (anything ParseStatus accepts) or a JSON
// number holding a MISTATUS value.
func (s *Status) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] != '"' {
		if string(data) == "null" {
			return &StatusError{Input: "null", Err: ErrUnknownStatus, Reason: "accepted: " + acceptedStatuses()}
		}
		v, err := ParseStatus(string(data))
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	var text string
	if err := jsonUnmarshal(data, &text); err != nil {
		return err
	}
	return s.UnmarshalText([]byte(text))
}
