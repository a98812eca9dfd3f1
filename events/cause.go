package events

// Cause says who or what made a change.
type Cause string

// The causes of a change.
const (
	// CauseUser is the contact's own choice. It is the default.
	CauseUser Cause = "user"
	// CauseEndpoint is one of the contact's devices or integrations acting on
	// their behalf: a client's inactivity timer (idle), a phone (on-the-phone), a
	// calendar (in-a-meeting).
	CauseEndpoint Cause = "endpoint"
	// CauseEngine is the engine itself (sign-out, expiry). Clients may not send it.
	CauseEngine Cause = "engine"
)

// ParseCause parses a cause; the empty string is CauseUser.
func ParseCause(text string) (Cause, error) {
	switch c := Cause(text); c {
	case "":
		return CauseUser, nil
	case CauseUser, CauseEndpoint, CauseEngine:
		return c, nil
	}
	return "", &ValueError{Field: "cause", Value: quote(text), Err: ErrInvalidCause,
		Reason: `accepted: "user", "endpoint", "engine"`}
}

// ParseClientCause parses the cause of a change a client asks for, as
// ParseCause does, refusing CauseEngine: the engine's own.
func ParseClientCause(text string) (Cause, error) {
	c, err := ParseCause(text)
	switch {
	case err != nil:
		return "", &ValueError{Field: "cause", Value: quote(text), Err: ErrInvalidCause, Reason: `accepted: "user", "endpoint"`}
	case c == CauseEngine:
		return "", &ValueError{Field: "cause", Value: quote(text), Err: ErrInvalidCause,
			Reason: `it is the engine's own (sign-out, expiry); accepted: "user", "endpoint"`}
	}
	return c, nil
}
