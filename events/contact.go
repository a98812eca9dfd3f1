package events

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxContactLen is the longest contact ID accepted, in bytes.
const MaxContactLen = 256

// MaxNameLen is the longest friendly name accepted, in bytes.
const MaxNameLen = 256

// ValidateContact checks a contact ID: non-empty UTF-8 of at most MaxContactLen
// bytes, without control characters or spaces.
func ValidateContact(id string) error {
	bad := func(reason string) error {
		return &ValueError{Field: "contact ID", Value: quote(id), Err: ErrInvalidContact, Reason: reason}
	}
	switch {
	case id == "":
		return bad("it is empty; a contact ID is 1 to 256 bytes of UTF-8 without spaces or control characters")
	case len(id) > MaxContactLen:
		return bad("it is " + strconv.Itoa(len(id)) + " bytes; at most 256 are accepted")
	case printableASCII(id, '!'):
		return nil
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

// ValidateName checks a friendly name: UTF-8 of at most MaxNameLen bytes without
// control characters. Spaces are fine; the empty name means "no name".
func ValidateName(name string) error {
	bad := func(reason string) error {
		return &ValueError{Field: "name", Value: quote(name), Err: ErrInvalidName, Reason: reason}
	}
	switch {
	case len(name) > MaxNameLen:
		return bad("it is " + strconv.Itoa(len(name)) + " bytes; at most 256 are accepted")
	case printableASCII(name, ' '):
		return nil
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

// printableASCII reports whether s is ASCII from lowest to '~': without control
// characters, and without spaces when lowest is '!'. It is the validators' fast
// path for the usual IDs and names.
func printableASCII(s string, lowest byte) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < lowest || c > '~' {
			return false
		}
	}
	return true
}

// tokenSafe reports whether b is written as itself in a subject token.
func tokenSafe(b byte) bool { return tokenSafeSet[b] }

var tokenSafeSet = func() (safe [256]bool) {
	for c := range 256 {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			safe[c] = true
		case c == '-', c == '_', c == '~', c == ':', c == '@', c == '+':
			safe[c] = true
		}
	}
	return safe
}()

const upperHex = "0123456789ABCDEF"

// Token returns the contact ID made safe for one NATS subject token: every byte
// outside A-Z a-z 0-9 - _ ~ : @ + is written %XX in uppercase hex. It does not
// validate the ID; ParseToken reverses it.
func Token(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !tokenSafe(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + 2*n)
	start := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		if tokenSafe(c) {
			continue
		}
		b.WriteString(id[start:i])
		b.Write([]byte{'%', upperHex[c>>4], upperHex[c&0xF]})
		start = i + 1
	}
	b.WriteString(id[start:])
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ParseToken decodes a subject token into a valid contact ID. Only the one
// spelling Token produces is accepted, so a contact has exactly one subject: an
// escaped safe byte, lowercase hex or a stray byte outside the safe set is an error.
func ParseToken(token string) (string, error) {
	bad := func(reason string) error {
		return &ValueError{Field: "subject token", Value: quote(token), Err: ErrInvalidToken, Reason: reason}
	}
	if token == "" {
		return "", bad("it is empty")
	}
	if len(token) > 3*MaxContactLen {
		return "", bad("it is " + strconv.Itoa(len(token)) + " bytes, longer than any contact ID's token")
	}
	var out strings.Builder // the decoded ID, once an escape is met
	escaped := false
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '%' {
			if !tokenSafe(c) {
				return "", bad("byte " + strconv.Itoa(i) + " (" + strconv.QuoteRune(rune(c)) +
					") must be written %XX; a token holds A-Z a-z 0-9 - _ ~ : @ + and %XX in uppercase hex")
			}
			if escaped {
				out.WriteByte(c)
			}
			continue
		}
		if !escaped {
			escaped = true
			out.Grow(len(token))
			out.WriteString(token[:i])
		}
		if i+2 >= len(token) {
			return "", bad("escape at byte " + strconv.Itoa(i) + " is cut short; %XX needs two uppercase hex digits")
		}
		hi, ok1 := unhex(token[i+1])
		lo, ok2 := unhex(token[i+2])
		if !ok1 || !ok2 {
			return "", bad("escape at byte " + strconv.Itoa(i) + " is not %XX with two uppercase hex digits")
		}
		d := hi<<4 | lo
		if tokenSafe(d) {
			return "", bad("escape at byte " + strconv.Itoa(i) + " encodes " + strconv.QuoteRune(rune(d)) +
				", which is written as itself")
		}
		out.WriteByte(d)
		i += 2
	}
	id := token
	if escaped {
		id = out.String()
	}
	if err := ValidateContact(id); err != nil {
		return "", bad("it decodes to an invalid contact ID: " + err.Error())
	}
	return id, nil
}
