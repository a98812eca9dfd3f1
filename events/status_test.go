package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-engine/presence/events"
)

// designStatuses is the table of DESIGN.md section 1, copied by hand: canonical
// name, MISTATUS constant, value. It is deliberately not derived from the package.
var designStatuses = []struct {
	status   events.Status
	name     string
	constant string
	value    uint16
	local    bool // "never in the protocol"
}{
	{events.Unknown, "unknown", "MISTATUS_UNKNOWN", 0x0000, false},
	{events.Offline, "offline", "MISTATUS_OFFLINE", 0x0001, false},
	{events.Online, "online", "MISTATUS_ONLINE", 0x0002, false},
	{events.Invisible, "invisible", "MISTATUS_INVISIBLE", 0x0006, false},
	{events.Busy, "busy", "MISTATUS_BUSY", 0x000A, false},
	{events.BeRightBack, "be-right-back", "MISTATUS_BE_RIGHT_BACK", 0x000E, false},
	{events.Idle, "idle", "MISTATUS_IDLE", 0x0012, false},
	{events.Away, "away", "MISTATUS_AWAY", 0x0022, false},
	{events.OnThePhone, "on-the-phone", "MISTATUS_ON_THE_PHONE", 0x0032, false},
	{events.OutToLunch, "out-to-lunch", "MISTATUS_OUT_TO_LUNCH", 0x0042, false},
	{events.InAMeeting, "in-a-meeting", "MISTATUS_IN_A_MEETING", 0x0052, false},
	{events.OutOfOffice, "out-of-office", "MISTATUS_OUT_OF_OFFICE", 0x0062, false},
	{events.DoNotDisturb, "do-not-disturb", "MISTATUS_DO_NOT_DISTURB", 0x0072, false},
	{events.InAConference, "in-a-conference", "MISTATUS_IN_A_CONFERENCE", 0x0082, false},
	{events.AllowUrgentInterruptions, "allow-urgent-interruptions", "MISTATUS_ALLOW_URGENT_INTERRUPTIONS", 0x0092, false},
	{events.MayBeAvailable, "may-be-available", "MISTATUS_MAY_BE_AVAILABLE", 0x00A2, false},
	{events.Custom, "custom", "MISTATUS_CUSTOM", 0x00B2, false},
	{events.LocalFindingServer, "local-finding-server", "MISTATUS_LOCAL_FINDING_SERVER", 0x0100, true},
	{events.LocalConnectingToServer, "local-connecting-to-server", "MISTATUS_LOCAL_CONNECTING_TO_SERVER", 0x0200, true},
	{events.LocalSynchronizingWithServer, "local-synchronizing-with-server", "MISTATUS_LOCAL_SYNCHRONIZING_WITH_SERVER", 0x0300, true},
	{events.LocalDisconnectingFromServer, "local-disconnecting-from-server", "MISTATUS_LOCAL_DISCONNECTING_FROM_SERVER", 0x0400, true},
}

// notStatuses are values that are not MISTATUS states.
var notStatuses = []events.Status{0x0003, 0x0004, 0x0010, 0x00C2, 0x0101, 0x0500, 0x9999, 0xFFFF}

func TestStatusValues(t *testing.T) {
	for _, tc := range designStatuses {
		t.Run(tc.name, func(t *testing.T) {
			if got := uint16(tc.status); got != tc.value {
				t.Errorf("value = 0x%04X, want 0x%04X", got, tc.value)
			}
			if got := tc.status.Code(); got != int(tc.value) {
				t.Errorf("Code() = %d, want %d", got, tc.value)
			}
			if got := tc.status.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.status.Constant(); got != tc.constant {
				t.Errorf("Constant() = %q, want %q", got, tc.constant)
			}
			if !tc.status.Valid() {
				t.Errorf("Valid() = false, want true")
			}
			if got := tc.status.Local(); got != tc.local {
				t.Errorf("Local() = %v, want %v", got, tc.local)
			}
		})
	}
}

func TestStatuses(t *testing.T) {
	got := events.Statuses()
	if len(got) != len(designStatuses) {
		t.Fatalf("Statuses() has %d states, want %d: %v", len(got), len(designStatuses), got)
	}
	for i, tc := range designStatuses {
		if got[i] != tc.status {
			t.Errorf("Statuses()[%d] = %v, want %v (value order)", i, got[i], tc.status)
		}
	}
	got[0] = events.Away // the caller owns the slice
	if again := events.Statuses(); again[0] != events.Unknown {
		t.Errorf("Statuses()[0] = %v after the caller changed its copy, want unknown", again[0])
	}
}

func TestStatusNotMISTATUS(t *testing.T) {
	for _, s := range notStatuses {
		t.Run(fmt.Sprintf("0x%04X", uint16(s)), func(t *testing.T) {
			if s.Valid() {
				t.Errorf("Valid() = true, want false")
			}
			if got, want := s.String(), fmt.Sprintf("0x%04X", uint16(s)); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if got := s.Constant(); got != "" {
				t.Errorf("Constant() = %q, want \"\"", got)
			}
			if s.IsOnline() {
				t.Errorf("IsOnline() = true, want false for a value that is not a status")
			}
		})
	}
}

func TestParseStatusAccepts(t *testing.T) {
	for _, tc := range designStatuses {
		inputs := []string{
			tc.name,
			strings.ToUpper(tc.name),
			mixCase(tc.name),
			tc.constant,
			strings.ToLower(tc.constant),
			mixCase(tc.constant),
			strconv.Itoa(int(tc.value)),
			fmt.Sprintf("0x%x", tc.value),
			fmt.Sprintf("0x%X", tc.value),
			fmt.Sprintf("0x%04X", tc.value),
			fmt.Sprintf("0X%04x", tc.value),
		}
		for _, in := range inputs {
			t.Run(in, func(t *testing.T) {
				got, err := events.ParseStatus(in)
				if err != nil {
					t.Fatalf("ParseStatus(%q) error = %v, want %v", in, err, tc.status)
				}
				if got != tc.status {
					t.Errorf("ParseStatus(%q) = %v (0x%04X), want %v (0x%04X)", in, got, uint16(got), tc.status, tc.value)
				}
			})
		}
	}
}

// mixCase alternates the case of letters: "MiStAtUs_AwAy".
func mixCase(s string) string {
	b := []byte(strings.ToLower(s))
	for i := 0; i < len(b); i += 2 {
		if 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestParseStatusRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"blank", "   "},
		{"garbage", "foo"},
		{"hex not a status", "0x9999"},
		{"decimal not a status", "3"},
		{"hex in range not a status", "0x0003"},
		{"negative", "-1"},
		{"exponent", "1e2"},
		{"float", "34.0"},
		{"bare 0x", "0x"},
		{"0x then sign", "0x+22"},
		{"plus sign", "+34"},
		{"binary", "0b100010"},
		{"octal", "0o42"},
		{"underscore", "3_4"},
		{"past uint16 decimal", "65536"},
		{"past uint16 hex", "0x10000"},
		{"status plus 0x10000", "65570"}, // 0x10022 would truncate to away
		{"huge decimal", "99999999999999999999999999999999"},
		{"huge hex", "0xFFFFFFFFFFFFFFFFFFFF"},
		{"prefix only", "MISTATUS_"},
		{"name with suffix", "away!"},
		{"name without dashes", "berightback"},
		{"constant with dashes", "MISTATUS-AWAY"},
		{"NUL inside", "aw\x00ay"},
		{"full-width digits", "３４"},
		{"long input", strings.Repeat("x", 300)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.ParseStatus(tc.in)
			if err == nil {
				t.Fatalf("ParseStatus(%q) = %v, want an error", tc.in, got)
			}
			if !errors.Is(err, events.ErrUnknownStatus) {
				t.Errorf("ParseStatus(%q) error = %v, want it to wrap ErrUnknownStatus", tc.in, err)
			}
			var se *events.StatusError
			if !errors.As(err, &se) {
				t.Errorf("ParseStatus(%q) error is %T, want *StatusError", tc.in, err)
			}
			if got != events.Unknown {
				t.Errorf("ParseStatus(%q) = %v with an error, want unknown", tc.in, got)
			}
			msg := err.Error()
			for _, want := range []string{
				events.Quote(tc.in), // names the input
				"accepted",
				"offline", "online", "be-right-back", "idle", "custom", // the canonical names
				"MISTATUS_", "decimal", "0x", // and the other spellings
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("ParseStatus(%q) error = %q, want it to contain %q", tc.in, msg, want)
				}
			}
			if len(msg) > 1024 {
				t.Errorf("ParseStatus of a %d-byte input gave a %d-byte error, want it shortened", len(tc.in), len(msg))
			}
		})
	}
}

func TestSettable(t *testing.T) {
	causes := []events.Cause{events.CauseUser, events.CauseEndpoint, events.CauseEngine}
	for _, tc := range designStatuses {
		for _, cause := range causes {
			t.Run(tc.name+"/"+string(cause), func(t *testing.T) {
				var wantReason string // "" means settable
				switch {
				case tc.status == events.Unknown:
					wantReason = "never-seen"
				case tc.local:
					wantReason = "local-only"
				case tc.status == events.Idle && cause == events.CauseUser:
					wantReason = "automatic"
				}
				err := tc.status.Settable(cause)
				if wantReason == "" {
					if err != nil {
						t.Errorf("%v.Settable(%q) = %v, want nil", tc.status, cause, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%v.Settable(%q) = nil, want an error wrapping ErrNotSettable", tc.status, cause)
				}
				if !errors.Is(err, events.ErrNotSettable) {
					t.Errorf("%v.Settable(%q) = %v, want it to wrap ErrNotSettable", tc.status, cause, err)
				}
				if errors.Is(err, events.ErrUnknownStatus) {
					t.Errorf("%v.Settable(%q) = %v, want it not to wrap ErrUnknownStatus: the status exists", tc.status, cause, err)
				}
				msg := err.Error()
				for _, want := range []string{tc.name, fmt.Sprintf("0x%04X", tc.value), wantReason} {
					if !strings.Contains(msg, want) {
						t.Errorf("%v.Settable(%q) = %q, want it to contain %q", tc.status, cause, msg, want)
					}
				}
			})
		}
	}
}

func TestSettableNotAStatus(t *testing.T) {
	for _, s := range notStatuses {
		t.Run(s.String(), func(t *testing.T) {
			err := s.Settable(events.CauseEngine)
			if !errors.Is(err, events.ErrUnknownStatus) {
				t.Errorf("Status(0x%04X).Settable(engine) = %v, want an error wrapping ErrUnknownStatus", uint16(s), err)
			}
			if err != nil && !strings.Contains(err.Error(), s.String()) {
				t.Errorf("Status(0x%04X).Settable(engine) = %q, want it to name %s", uint16(s), err, s)
			}
		})
	}
}

func TestVisible(t *testing.T) {
	for _, tc := range designStatuses {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.status
			if tc.status == events.Invisible {
				want = events.Offline
			}
			if got := tc.status.Visible(); got != want {
				t.Errorf("%v.Visible() = %v, want %v", tc.status, got, want)
			}
			if got := tc.status.Visible().Visible(); got != want {
				t.Errorf("%v.Visible().Visible() = %v, want %v", tc.status, got, want)
			}
		})
	}
}

func TestIsOnline(t *testing.T) {
	want := map[events.Status]bool{
		events.Unknown:                      false,
		events.Offline:                      false,
		events.Online:                       true,
		events.Invisible:                    false, // offline to others
		events.Busy:                         true,
		events.BeRightBack:                  true,
		events.Idle:                         true,
		events.Away:                         true,
		events.OnThePhone:                   true,
		events.OutToLunch:                   true,
		events.InAMeeting:                   true,
		events.OutOfOffice:                  true,
		events.DoNotDisturb:                 true,
		events.InAConference:                true,
		events.AllowUrgentInterruptions:     true,
		events.MayBeAvailable:               true,
		events.Custom:                       true,
		events.LocalFindingServer:           false,
		events.LocalConnectingToServer:      false,
		events.LocalSynchronizingWithServer: false,
		events.LocalDisconnectingFromServer: false,
	}
	for _, tc := range designStatuses {
		t.Run(tc.name, func(t *testing.T) {
			w, ok := want[tc.status]
			if !ok {
				t.Fatalf("no expectation for %v", tc.status)
			}
			if got := tc.status.IsOnline(); got != w {
				t.Errorf("%v.IsOnline() = %v, want %v", tc.status, got, w)
			}
			// "All online results share a common factor", on the visible status.
			if !tc.local && tc.status != events.Unknown {
				if bit := tc.status.Visible()&0x2 != 0; bit != w {
					t.Errorf("%v: visible status 0x%04X has bit 0x2 = %v, but IsOnline() = %v", tc.status, uint16(tc.status.Visible()), bit, w)
				}
			}
		})
	}
}

func TestVisibleChange(t *testing.T) {
	tests := []struct {
		name           string
		previous, next events.Status
		want           bool
	}{
		{"offline to invisible", events.Offline, events.Invisible, false},
		{"invisible to offline", events.Invisible, events.Offline, false},
		{"unknown to invisible", events.Unknown, events.Invisible, true},
		{"unknown to offline", events.Unknown, events.Offline, true},
		{"online to invisible", events.Online, events.Invisible, true},
		{"online to offline", events.Online, events.Offline, true},
		{"invisible to online", events.Invisible, events.Online, true},
		{"offline to online", events.Offline, events.Online, true},
		{"online to away", events.Online, events.Away, true},
		{"away to away", events.Away, events.Away, false},
		{"invisible to invisible", events.Invisible, events.Invisible, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := events.VisibleChange(tc.previous, tc.next); got != tc.want {
				t.Errorf("VisibleChange(%v, %v) = %v, want %v", tc.previous, tc.next, got, tc.want)
			}
		})
	}

	// Every pair: a change is visible unless nothing changed or it is between
	// offline and invisible.
	offOrInv := func(s events.Status) bool { return s == events.Offline || s == events.Invisible }
	for _, p := range designStatuses {
		for _, n := range designStatuses {
			want := p.status != n.status && !(offOrInv(p.status) && offOrInv(n.status))
			if got := events.VisibleChange(p.status, n.status); got != want {
				t.Errorf("VisibleChange(%v, %v) = %v, want %v", p.status, n.status, got, want)
			}
		}
	}

	// online -> invisible reads exactly like online -> offline, whatever came before.
	for _, p := range designStatuses {
		if a, b := events.VisibleChange(p.status, events.Invisible), events.VisibleChange(p.status, events.Offline); a != b {
			t.Errorf("VisibleChange(%v, invisible) = %v but VisibleChange(%v, offline) = %v, want them equal", p.status, a, p.status, b)
		}
		if a, b := events.VisibleChange(events.Invisible, p.status), events.VisibleChange(events.Offline, p.status); a != b {
			t.Errorf("VisibleChange(invisible, %v) = %v but VisibleChange(offline, %v) = %v, want them equal", p.status, a, p.status, b)
		}
	}
}

func TestStatusMarshalJSON(t *testing.T) {
	for _, tc := range designStatuses {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.status)
			if err != nil {
				t.Fatalf("json.Marshal(%v) error = %v", tc.status, err)
			}
			if got, want := string(b), strconv.Quote(tc.name); got != want {
				t.Errorf("json.Marshal(%v) = %s, want %s", tc.status, got, want)
			}
			var back events.Status
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("json.Unmarshal(%s) error = %v", b, err)
			}
			if back != tc.status {
				t.Errorf("json.Unmarshal(%s) = %v, want %v", b, back, tc.status)
			}
		})
	}
	t.Run("not a status", func(t *testing.T) {
		_, err := json.Marshal(events.Status(0x9999))
		if !errors.Is(err, events.ErrUnknownStatus) {
			t.Errorf("json.Marshal(Status(0x9999)) error = %v, want it to wrap ErrUnknownStatus", err)
		}
	})
}

func TestStatusUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		json string
		want events.Status
	}{
		{"canonical name", `"away"`, events.Away},
		{"name upper case", `"AWAY"`, events.Away},
		{"constant", `"MISTATUS_BE_RIGHT_BACK"`, events.BeRightBack},
		{"constant lower case", `"mistatus_be_right_back"`, events.BeRightBack},
		{"hex string", `"0x0022"`, events.Away},
		{"decimal string", `"34"`, events.Away},
		{"number", `34`, events.Away},
		{"number zero", `0`, events.Unknown},
		{"number local", `256`, events.LocalFindingServer},
		{"escaped string", `"\u0061way"`, events.Away},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got events.Status
			if err := json.Unmarshal([]byte(tc.json), &got); err != nil {
				t.Fatalf("json.Unmarshal(%s) error = %v, want %v", tc.json, err, tc.want)
			}
			if got != tc.want {
				t.Errorf("json.Unmarshal(%s) = %v, want %v", tc.json, got, tc.want)
			}
			var wrapped struct {
				S events.Status `json:"s"`
			}
			if err := json.Unmarshal([]byte(`{"s":`+tc.json+`}`), &wrapped); err != nil {
				t.Fatalf("json.Unmarshal of a field %s error = %v", tc.json, err)
			}
			if wrapped.S != tc.want {
				t.Errorf("json.Unmarshal of a field %s = %v, want %v", tc.json, wrapped.S, tc.want)
			}
		})
	}
}

func TestStatusUnmarshalJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{"null", `null`},
		{"string null", `"null"`},
		{"empty string", `""`},
		{"garbage name", `"foo"`},
		{"hex not a status", `"0x9999"`},
		{"number not a status", `3`},
		{"negative", `-1`},
		{"exponent", `1e2`},
		{"float", `34.0`},
		{"huge number", `1e400`},
		{"past uint16", `65570`},
		{"bool", `true`},
		{"object", `{}`},
		{"array", `["away"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got events.Status
			err := json.Unmarshal([]byte(tc.json), &got)
			if err == nil {
				t.Fatalf("json.Unmarshal(%s) = %v, want an error", tc.json, got)
			}
			// A wrong JSON type fails before the status is parsed; everything
			// that is a string or number must say it is not a status.
			if c := tc.json[0]; c == '"' || c == '-' || ('0' <= c && c <= '9') || tc.json == "null" {
				if !errors.Is(err, events.ErrUnknownStatus) {
					t.Errorf("json.Unmarshal(%s) error = %v, want it to wrap ErrUnknownStatus", tc.json, err)
				}
			}
			var wrapped struct {
				S events.Status `json:"s"`
			}
			if err := json.Unmarshal([]byte(`{"s":`+tc.json+`}`), &wrapped); err == nil {
				t.Errorf("json.Unmarshal of a field %s = %v, want an error", tc.json, wrapped.S)
			}
		})
	}
}

func TestStatusText(t *testing.T) {
	for _, tc := range designStatuses {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.status.MarshalText()
			if err != nil {
				t.Fatalf("MarshalText() error = %v", err)
			}
			if string(b) != tc.name {
				t.Errorf("MarshalText() = %q, want %q", b, tc.name)
			}
			var s events.Status
			if err := s.UnmarshalText([]byte(tc.constant)); err != nil {
				t.Fatalf("UnmarshalText(%q) error = %v", tc.constant, err)
			}
			if s != tc.status {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tc.constant, s, tc.status)
			}
		})
	}
	t.Run("refused keeps the old value", func(t *testing.T) {
		s := events.Away
		if err := s.UnmarshalText([]byte("foo")); !errors.Is(err, events.ErrUnknownStatus) {
			t.Errorf("UnmarshalText(\"foo\") error = %v, want it to wrap ErrUnknownStatus", err)
		}
		if s != events.Away {
			t.Errorf("after a refused UnmarshalText the status is %v, want away unchanged", s)
		}
	})
}

func TestParseCause(t *testing.T) {
	tests := []struct {
		in   string
		want events.Cause
	}{
		{"", events.CauseUser},
		{"user", events.CauseUser},
		{"endpoint", events.CauseEndpoint},
		{"engine", events.CauseEngine},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := events.ParseCause(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseCause(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
			}
		})
	}
	for _, in := range []string{"User", "admin", " user", "system"} {
		t.Run(in, func(t *testing.T) {
			_, err := events.ParseCause(in)
			if !errors.Is(err, events.ErrInvalidCause) {
				t.Fatalf("ParseCause(%q) error = %v, want it to wrap ErrInvalidCause", in, err)
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Quote(in)) || !strings.Contains(msg, `"endpoint"`) {
				t.Errorf("ParseCause(%q) error = %q, want it to name the input and the accepted causes", in, msg)
			}
		})
	}
}

func TestStatusOfEveryValue(t *testing.T) {
	names := make(map[events.Status]string)
	for _, s := range events.Statuses() {
		names[s] = s.String()
	}
	for v := range 1 << 16 {
		s := events.Status(v)
		name, valid := names[s]
		if !valid {
			name = fmt.Sprintf("0x%04X", v)
		}
		if s.Valid() != valid || s.String() != name {
			t.Errorf("Status(0x%04X): Valid() = %v, String() = %q; want %v, %q", v, s.Valid(), s.String(), valid, name)
		}
	}
}
