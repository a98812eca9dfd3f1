package events_test

// The reference codec: the package's records, statuses and tokens as they were
// read and written before the hand-written codec, with encoding/json, kept
// verbatim (but for the names) so that the differential tests hold the codec to
// the same bytes, the same values and the same errors.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/presence-engine/presence/events"
)

type refEventJSON struct {
	V         int          `json:"v"`
	Contact   string       `json:"contact"`
	Name      string       `json:"name,omitempty"`
	Status    refStatus    `json:"status"`
	Previous  refStatus    `json:"previous"`
	At        string       `json:"at"`
	Cause     events.Cause `json:"cause"`
	RequestID string       `json:"request_id,omitempty"`
}

type refChangeJSON struct {
	V        int       `json:"v"`
	Contact  string    `json:"contact"`
	Name     string    `json:"name,omitempty"`
	Previous refStatus `json:"previous"`
	Seq      uint64    `json:"seq"`
	At       string    `json:"at"`
}

// refEventOut and refChangeOut are the records as encoding/json wrote them.
type refEventOut struct {
	V         int           `json:"v"`
	Contact   string        `json:"contact"`
	Name      string        `json:"name,omitempty"`
	Status    events.Status `json:"status"`
	Previous  events.Status `json:"previous"`
	At        string        `json:"at"`
	Cause     events.Cause  `json:"cause"`
	RequestID string        `json:"request_id,omitempty"`
}

type refChangeOut struct {
	V        int           `json:"v"`
	Contact  string        `json:"contact"`
	Name     string        `json:"name,omitempty"`
	Previous events.Status `json:"previous"`
	Seq      uint64        `json:"seq"`
	At       string        `json:"at"`
}

// refStatus is events.Status as encoding/json read it.
type refStatus events.Status

func (s *refStatus) UnmarshalText(text []byte) error {
	v, err := refParseStatus(string(text))
	if err != nil {
		return err
	}
	*s = refStatus(v)
	return nil
}

func (s *refStatus) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] != '"' {
		if string(data) == "null" {
			return &events.StatusError{Input: "null", Err: events.ErrUnknownStatus, Reason: "accepted: " + refAcceptedStatuses()}
		}
		v, err := refParseStatus(string(data))
		if err != nil {
			return err
		}
		*s = refStatus(v)
		return nil
	}
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return err
	}
	return s.UnmarshalText([]byte(text))
}

// refByName maps every lowercase name and constant to its status.
var refByName = func() map[string]events.Status {
	m := make(map[string]events.Status)
	for _, s := range events.Statuses() {
		m[s.String()] = s
		m[strings.ToLower(s.Constant())] = s
	}
	return m
}()

func refAcceptedStatuses() string {
	var names []string
	for _, s := range events.SettableStatuses() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ") +
		" (or their MISTATUS_* constant names, or their values in decimal or 0x hex)"
}

func refParseStatus(text string) (events.Status, error) {
	in := strings.TrimSpace(text)
	if s, ok := refByName[strings.ToLower(in)]; ok {
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
			if s := events.Status(n); s.Valid() {
				return s, nil
			}
		}
	}
	return events.Unknown, &events.StatusError{Input: events.Quote(text), Err: events.ErrUnknownStatus,
		Reason: "accepted: " + refAcceptedStatuses()}
}

func refEncodeEvent(e events.Event) ([]byte, error) {
	return json.Marshal(refEventOut{
		V: events.Version, Contact: e.Contact, Name: e.Name, Status: e.Status, Previous: e.Previous,
		At: e.At.UTC().Format(time.RFC3339Nano), Cause: e.Cause, RequestID: e.RequestID,
	})
}

func refEncodeChange(c events.Change) ([]byte, error) {
	return json.Marshal(refChangeOut{
		V: events.Version, Contact: c.Contact, Name: c.Name, Previous: c.Previous, Seq: c.Seq,
		At: c.At.UTC().Format(time.RFC3339Nano),
	})
}

func refMalformed(kind, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", events.ErrMalformed, kind, fmt.Sprintf(format, args...))
}

func refMalformedBy(kind string, err error) error {
	return fmt.Errorf("%w: %s: %w", events.ErrMalformed, kind, err)
}

func refCheckVersion(kind string, v int) error {
	switch {
	case v == 0:
		return refMalformed(kind, `"v" is missing or 0; records have "v":%d`, events.Version)
	case v < 0:
		return refMalformed(kind, `"v" is %d; records have "v":%d`, v, events.Version)
	case v > events.Version:
		return fmt.Errorf("%w: %s has \"v\":%d; this engine reads up to %d", events.ErrUnsupportedVersion, kind, v, events.Version)
	}
	return nil
}

func refParseTime(kind, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, refMalformed(kind, `"at" %s is not an RFC 3339 time`, events.Quote(s))
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, refMalformed(kind, `"at" %s is outside the years 0000 to 9999 in UTC`, events.Quote(s))
	}
	return t.UTC(), nil
}

func refValidateContact(id string) error {
	bad := func(reason string) error {
		return &events.ValueError{Field: "contact ID", Value: events.Quote(id), Err: events.ErrInvalidContact, Reason: reason}
	}
	switch {
	case id == "":
		return bad("it is empty; a contact ID is 1 to 256 bytes of UTF-8 without spaces or control characters")
	case len(id) > events.MaxContactLen:
		return bad("it is " + strconv.Itoa(len(id)) + " bytes; at most 256 are accepted")
	case !utf8.ValidString(id):
		return bad("it is not valid UTF-8")
	}
	for i, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return bad("byte " + strconv.Itoa(i) + " is a space or control character (" +
				strconv.QuoteRune(r) + "); none are accepted")
		}
	}
	return nil
}

func refValidateName(name string) error {
	bad := func(reason string) error {
		return &events.ValueError{Field: "name", Value: events.Quote(name), Err: events.ErrInvalidName, Reason: reason}
	}
	switch {
	case len(name) > events.MaxNameLen:
		return bad("it is " + strconv.Itoa(len(name)) + " bytes; at most 256 are accepted")
	case !utf8.ValidString(name):
		return bad("it is not valid UTF-8")
	}
	for i, r := range name {
		if unicode.IsControl(r) {
			return bad("byte " + strconv.Itoa(i) + " is a control character (" + strconv.QuoteRune(r) + "); none are accepted")
		}
	}
	return nil
}

func refValidateRequestID(id string) error {
	bad := func(reason string) error {
		return &events.ValueError{Field: "request_id", Value: events.Quote(id), Err: events.ErrMalformed, Reason: reason}
	}
	if len(id) > events.MaxRequestIDLen {
		return bad("it is " + strconv.Itoa(len(id)) + " bytes; at most 128 are accepted")
	}
	if !utf8.ValidString(id) {
		return bad("it is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return bad("it holds a control character (" + strconv.QuoteRune(r) + "); none are accepted")
		}
	}
	return nil
}

func refLogCause(c events.Cause) (events.Cause, error) {
	if c == "" {
		return events.CauseUser, nil
	}
	if len(c) > 64 || !utf8.ValidString(string(c)) || strings.IndexFunc(string(c), unicode.IsControl) >= 0 {
		return "", &events.ValueError{Field: "cause", Value: events.Quote(string(c)), Err: events.ErrInvalidCause,
			Reason: "a cause is at most 64 bytes of UTF-8 without control characters"}
	}
	return c, nil
}

func refStrictJSON(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("not valid UTF-8")
	}
	return json.Unmarshal(data, v)
}

func refDecodeEvent(data []byte) (events.Event, error) {
	const kind = "event"
	var j refEventJSON
	if err := refStrictJSON(data, &j); err != nil {
		return events.Event{}, refMalformedBy(kind, err)
	}
	if err := refCheckVersion(kind, j.V); err != nil {
		return events.Event{}, err
	}
	if err := refValidateContact(j.Contact); err != nil {
		return events.Event{}, refMalformedBy(kind, err)
	}
	if err := refValidateName(j.Name); err != nil {
		return events.Event{}, refMalformedBy(kind, err)
	}
	cause, err := refLogCause(j.Cause)
	if err != nil {
		return events.Event{}, refMalformedBy(kind, err)
	}
	status, previous := events.Status(j.Status), events.Status(j.Previous)
	if status == events.Unknown || status.Local() || !status.Valid() {
		return events.Event{}, refMalformed(kind, `"status" %s is not a status a change can have`, status)
	}
	if previous.Local() || !previous.Valid() {
		return events.Event{}, refMalformed(kind, `"previous" %s is not a protocol status`, previous)
	}
	if previous == status {
		return events.Event{}, refMalformed(kind, `"previous" and "status" are both %s; an event is a change`, status)
	}
	if err := refValidateRequestID(j.RequestID); err != nil {
		return events.Event{}, refMalformedBy(kind, err)
	}
	at, err := refParseTime(kind, j.At)
	if err != nil {
		return events.Event{}, err
	}
	return events.Event{Contact: j.Contact, Name: j.Name, Status: status, Previous: previous,
		At: at, Cause: cause, RequestID: j.RequestID}, nil
}

func refDecodeChange(data []byte) (events.Change, error) {
	const kind = "feed entry"
	var j refChangeJSON
	if err := refStrictJSON(data, &j); err != nil {
		return events.Change{}, refMalformedBy(kind, err)
	}
	if err := refCheckVersion(kind, j.V); err != nil {
		return events.Change{}, err
	}
	if err := refValidateContact(j.Contact); err != nil {
		return events.Change{}, refMalformedBy(kind, err)
	}
	if err := refValidateName(j.Name); err != nil {
		return events.Change{}, refMalformedBy(kind, err)
	}
	previous := events.Status(j.Previous)
	if previous.Local() || !previous.Valid() || previous == events.Invisible {
		return events.Change{}, refMalformed(kind, `"previous" %s is not a visible status`, previous)
	}
	if j.Seq == 0 {
		return events.Change{}, refMalformed(kind, `"seq" is missing or 0`)
	}
	at, err := refParseTime(kind, j.At)
	if err != nil {
		return events.Change{}, err
	}
	return events.Change{Contact: j.Contact, Name: j.Name, Previous: previous, Seq: j.Seq, At: at}, nil
}

func refTokenSafe(b byte) bool {
	switch {
	case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9':
		return true
	case b == '-', b == '_', b == '~', b == ':', b == '@', b == '+':
		return true
	}
	return false
}

func refToken(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !refTokenSafe(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + 2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if refTokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&0xF])
	}
	return b.String()
}

func refUnhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func refParseToken(token string) (string, error) {
	bad := func(reason string) error {
		return &events.ValueError{Field: "subject token", Value: events.Quote(token), Err: events.ErrInvalidToken, Reason: reason}
	}
	if token == "" {
		return "", bad("it is empty")
	}
	if len(token) > 3*events.MaxContactLen {
		return "", bad("it is " + strconv.Itoa(len(token)) + " bytes, longer than any contact ID's token")
	}
	var out []byte
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '%' {
			if !refTokenSafe(c) {
				return "", bad("byte " + strconv.Itoa(i) + " (" + strconv.QuoteRune(rune(c)) +
					") must be written %XX; a token holds A-Z a-z 0-9 - _ ~ : @ + and %XX in uppercase hex")
			}
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(token))
			out = append(out, token[:i]...)
		}
		if i+2 >= len(token) {
			return "", bad("escape at byte " + strconv.Itoa(i) + " is cut short; %XX needs two uppercase hex digits")
		}
		hi, ok1 := refUnhex(token[i+1])
		lo, ok2 := refUnhex(token[i+2])
		if !ok1 || !ok2 {
			return "", bad("escape at byte " + strconv.Itoa(i) + " is not %XX with two uppercase hex digits")
		}
		d := hi<<4 | lo
		if refTokenSafe(d) {
			return "", bad("escape at byte " + strconv.Itoa(i) + " encodes " + strconv.QuoteRune(rune(d)) +
				", which is written as itself")
		}
		out = append(out, d)
		i += 2
	}
	id := token
	if out != nil {
		id = string(out)
	}
	if err := refValidateContact(id); err != nil {
		return "", bad("it decodes to an invalid contact ID: " + err.Error())
	}
	return id, nil
}
