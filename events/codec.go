package events

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The hand-written JSON codec of the records. The log and the feed are on the hot
// path of every fold, feed and write, so records are not encoded and decoded with
// encoding/json, whose reflection and allocations dominated them. The contract is
// unchanged, and the differential tests (codec_test.go, against the encoding/json
// codec kept in reference_test.go) hold the codec to it:
//
//   - appendString writes a string byte for byte as encoding/json does (HTML
//     characters, control characters, U+2028 and U+2029 escaped, invalid UTF-8
//     written as \ufffd).
//   - record.read reads the records writers produce: one JSON object with exactly
//     spelled keys, no key twice, strings and numbers for the known fields, any
//     valid JSON for the others. Whatever it is not sure of (a key in another case,
//     a duplicate key, null, nesting deeper than maxDepth, a status that does not
//     parse...) it leaves to encoding/json, so that every input is accepted or
//     refused, with the same error, as encoding/json decodes it.
//   - parseRFC3339 is time.Parse's own fast path for RFC 3339, without the
//     allocation of a string; what it does not take goes to time.Parse.

// field names a field of the records.
type field uint8

const (
	fieldV field = iota
	fieldContact
	fieldName
	fieldStatus
	fieldPrevious
	fieldAt
	fieldCause
	fieldRequestID
	fieldSeq
	numFields
)

// fieldNames are the JSON names of the fields, by field.
var fieldNames = [numFields]string{"v", "contact", "name", "status", "previous", "at", "cause", "request_id", "seq"}

// fieldSet is a set of fields, one bit each.
type fieldSet uint16

func (s fieldSet) has(f field) bool { return s&(1<<f) != 0 }

// The fields of each kind of record.
const (
	eventFields fieldSet = 1<<fieldV | 1<<fieldContact | 1<<fieldName | 1<<fieldStatus |
		1<<fieldPrevious | 1<<fieldAt | 1<<fieldCause | 1<<fieldRequestID
	changeFields fieldSet = 1<<fieldV | 1<<fieldContact | 1<<fieldName | 1<<fieldPrevious |
		1<<fieldSeq | 1<<fieldAt
)

// lookupField returns the field a key spells exactly.
func lookupField(key []byte) (field, bool) {
	switch string(key) {
	case "v":
		return fieldV, true
	case "contact":
		return fieldContact, true
	case "name":
		return fieldName, true
	case "status":
		return fieldStatus, true
	case "previous":
		return fieldPrevious, true
	case "at":
		return fieldAt, true
	case "cause":
		return fieldCause, true
	case "request_id":
		return fieldRequestID, true
	case "seq":
		return fieldSeq, true
	}
	return 0, false
}

// maxDepth is how deep the fast path follows arrays and objects in unknown
// fields; deeper ones are left to encoding/json, which has limits of its own.
const maxDepth = 32

// jsonValue is where the value of a known field lies in a record.
type jsonValue struct {
	start, end int  // the text of a number, or of a string between its quotes
	str        bool // a string, not a number
	escaped    bool // a string that holds escapes
	integer    bool // a number without fraction or exponent
}

// record reads a JSON record on the fast path. Its zero value is ready to use.
type record struct {
	data     []byte
	pos      int
	nonASCII bool     // a byte past ASCII was seen: the input needs a UTF-8 check
	seen     fieldSet // the known fields present
	values   [numFields]jsonValue
}

// read scans data as one JSON object whose known fields are fields. It reports
// false when data is not a record it is sure to read as encoding/json does; the
// caller then leaves data to encoding/json.
func (r *record) read(data []byte, fields fieldSet) bool {
	r.data = data
	r.skipSpace()
	if !r.consume('{') {
		return false
	}
	r.skipSpace()
	if !r.consume('}') {
		for {
			if r.peek() != '"' {
				return false
			}
			start, end, escaped, ok := r.readString()
			if !ok || escaped {
				return false
			}
			key := data[start:end]
			r.skipSpace()
			if !r.consume(':') {
				return false
			}
			r.skipSpace()
			if f, ok := lookupField(key); ok && fields.has(f) {
				if r.seen.has(f) {
					return false // encoding/json takes the last; leave it the choice
				}
				r.seen |= 1 << f
				if !r.readScalar(&r.values[f]) {
					return false
				}
			} else {
				if foldsToField(key, fields) || !r.skipValue(0) {
					return false
				}
			}
			r.skipSpace()
			if r.consume('}') {
				break
			}
			if !r.consume(',') {
				return false
			}
			r.skipSpace()
		}
	}
	r.skipSpace()
	if r.pos != len(data) {
		return false
	}
	return !r.nonASCII || utf8.Valid(data)
}

// foldsToField reports whether an unknown key is one encoding/json would match
// to a field anyway: a key in another case, or one it folds with Unicode.
func foldsToField(key []byte, fields fieldSet) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true // "ſ" folds to "s", "K" to "k": not worth telling apart
		}
	}
	for f := range numFields {
		if fields.has(f) && asciiEqualFold(key, fieldNames[f]) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func (r *record) peek() byte {
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

func (r *record) consume(c byte) bool {
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return true
	}
	return false
}

func (r *record) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// plainString holds the bytes that stand for themselves in a JSON string and
// need no check: ASCII but the control characters, '"' and '\\'.
var plainString = func() (plain [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// readString reads a JSON string at r.pos, checking its escapes, and returns
// where its text lies between the quotes.
func (r *record) readString() (start, end int, escaped, ok bool) {
	data := r.data
	i := r.pos + 1 // past the opening quote
	start = i
	for {
		for i < len(data) && plainString[data[i]] {
			i++
		}
		if i >= len(data) {
			return 0, 0, false, false
		}
		switch c := data[i]; {
		case c == '"':
			r.pos = i + 1
			return start, i, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return 0, 0, false, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if getu4(data[i:]) < 0 {
					return 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		case c < ' ':
			return 0, 0, false, false
		default: // past ASCII
			r.nonASCII = true
			i++
		}
	}
}

// readNumber reads a JSON number at r.pos into v.
func (r *record) readNumber(v *jsonValue) bool {
	v.start = r.pos
	v.integer = true
	r.consume('-')
	switch c := r.peek(); {
	case c == '0':
		r.pos++
	case '1' <= c && c <= '9':
		r.skipDigits()
	default:
		return false
	}
	if r.consume('.') {
		v.integer = false
		if !isDigit(r.peek()) {
			return false
		}
		r.skipDigits()
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		r.pos++
		v.integer = false
		if c := r.peek(); c == '+' || c == '-' {
			r.pos++
		}
		if !isDigit(r.peek()) {
			return false
		}
		r.skipDigits()
	}
	v.end = r.pos
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (r *record) skipDigits() {
	for r.pos < len(r.data) && isDigit(r.data[r.pos]) {
		r.pos++
	}
}

// readScalar reads the value of a known field into v: a string or a number.
func (r *record) readScalar(v *jsonValue) bool {
	if r.peek() != '"' {
		return r.readNumber(v)
	}
	v.str = true
	var ok bool
	v.start, v.end, v.escaped, ok = r.readString()
	return ok
}

// skipValue reads any JSON value at r.pos, checking it.
func (r *record) skipValue(depth int) bool {
	switch r.peek() {
	case '"':
		_, _, _, ok := r.readString()
		return ok
	case '{', '[':
		return depth < maxDepth && r.skipComposite(depth)
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	var v jsonValue
	return r.readNumber(&v)
}

// skipComposite reads an object or an array at r.pos, checking it.
func (r *record) skipComposite(depth int) bool {
	object := r.data[r.pos] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	r.pos++
	r.skipSpace()
	if r.consume(closing) {
		return true
	}
	for {
		if object {
			if r.peek() != '"' {
				return false
			}
			if _, _, _, ok := r.readString(); !ok {
				return false
			}
			r.skipSpace()
			if !r.consume(':') {
				return false
			}
			r.skipSpace()
		}
		if !r.skipValue(depth + 1) {
			return false
		}
		r.skipSpace()
		if r.consume(closing) {
			return true
		}
		if !r.consume(',') {
			return false
		}
		r.skipSpace()
	}
}

func (r *record) literal(word string) bool {
	if len(r.data)-r.pos >= len(word) && string(r.data[r.pos:r.pos+len(word)]) == word {
		r.pos += len(word)
		return true
	}
	return false
}

// text returns the raw text of a field's value.
func (r *record) text(f field) []byte {
	v := &r.values[f]
	return r.data[v.start:v.end]
}

// isString reports whether a field is absent (it stays zero) or a string: what
// encoding/json needs to decode it into a string without an error.
func (r *record) isString(f field) bool {
	return !r.seen.has(f) || r.values[f].str
}

// int returns field f, a number, as encoding/json decodes it into an int.
func (r *record) int(f field) (int, bool) {
	if !r.seen.has(f) {
		return 0, true
	}
	v := r.values[f]
	if v.str || !v.integer {
		return 0, false
	}
	digits := r.text(f)
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) > 18 {
		return 0, false // rare enough to leave the range checks to encoding/json
	}
	var n int64
	for _, c := range digits {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

// uint64 returns field f, a number, as encoding/json decodes it into a uint64.
func (r *record) uint64(f field) (uint64, bool) {
	if !r.seen.has(f) {
		return 0, true
	}
	v := r.values[f]
	if v.str || !v.integer {
		return 0, false
	}
	var n uint64
	for _, c := range r.text(f) {
		if c == '-' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// status returns field f as Status.UnmarshalJSON decodes it. It reports false on
// anything that method refuses, leaving the error to encoding/json.
func (r *record) status(f field) (Status, bool) {
	if !r.seen.has(f) {
		return Unknown, true
	}
	v := r.values[f]
	text := r.text(f)
	if !v.str {
		// A JSON number: its text is parsed as a decimal value.
		if !v.integer || text[0] == '-' || len(text) > 5 {
			return Unknown, false
		}
		n := 0
		for _, c := range text {
			n = n*10 + int(c-'0')
		}
		if s := Status(n); n <= 0xFFFF && s.Valid() {
			return s, true
		}
		return Unknown, false
	}
	if !v.escaped {
		if s, ok := lookupName(text); ok {
			return s, true
		}
	}
	s, err := ParseStatus(r.unquote(f))
	return s, err == nil
}

// unquote returns a string field's text, its escapes decoded.
func (r *record) unquote(f field) string {
	if !r.values[f].escaped {
		return string(r.text(f))
	}
	var buf [64]byte
	return string(appendUnescaped(buf[:0], r.text(f)))
}

// writeText writes a string field's text to b, its escapes decoded.
func (r *record) writeText(b *strings.Builder, f field) {
	if !r.seen.has(f) {
		return
	}
	if !r.values[f].escaped {
		b.Write(r.text(f))
		return
	}
	var buf [128]byte
	b.Write(appendUnescaped(buf[:0], r.text(f)))
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value, or it
// returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// appendUnescaped appends the text of a JSON string, whose escapes readString
// has checked, with its escapes decoded as encoding/json decodes them: a lone
// surrogate becomes U+FFFD.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			rr := getu4(s[i:])
			i += 6
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, getu4(s[i:])); dec != unicode.ReplacementChar {
					dst = utf8.AppendRune(dst, dec)
					i += 6
					continue
				}
				rr = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, rr)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// htmlSafe holds the ASCII bytes encoding/json writes as themselves in a string:
// all but the control characters, '"', '\\', and '<', '>', '&'.
var htmlSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = true
	}
	for _, c := range `"\<>&` {
		safe[c] = false
	}
	return safe
}()

const lowerHex = "0123456789abcdef"

// appendString appends s as a JSON string, byte for byte as encoding/json
// writes it.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// parseRFC3339 parses an RFC 3339 time exactly as time.Parse does when its fast
// path takes it, and returns it in UTC. It reports false for everything else,
// which time.Parse then decides.
func parseRFC3339(s []byte) (time.Time, bool) {
	ok := true
	num := func(s []byte, lo, hi int) int {
		x := 0
		for _, c := range s {
			if !isDigit(c) {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || hi < x {
			ok = false
			return lo
		}
		return x
	}
	if len(s) < len("2006-01-02T15:04:05") {
		return time.Time{}, false
	}
	year := num(s[0:4], 0, 9999)
	month := num(s[5:7], 1, 12)
	day := num(s[8:10], 1, daysIn(month, year))
	hour := num(s[11:13], 0, 23)
	minute := num(s[14:16], 0, 59)
	sec := num(s[17:19], 0, 59)
	if !ok || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	s = s[19:]

	nsec := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		// Digits past the ninth are dropped.
		for i := 1; i < 10; i++ {
			nsec *= 10
			if i < n {
				nsec += int(s[i] - '0')
			}
		}
		s = s[n:]
	}

	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if len(s) == 1 && s[0] == 'Z' {
		return t, true
	}
	if len(s) != len("-07:00") {
		return time.Time{}, false
	}
	hr := num(s[1:3], 0, 23)
	mm := num(s[4:6], 0, 59)
	if !ok || (s[0] != '-' && s[0] != '+') || s[3] != ':' {
		return time.Time{}, false
	}
	offset := (hr*60 + mm) * 60
	if s[0] == '-' {
		offset = -offset
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

// daysIn returns the number of days in a month of a year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// AppendJSONString appends s as a JSON string, byte for byte as encoding/json
// writes it: for the other records of the system (service replies) that want
// the same speed as events.
func AppendJSONString(dst []byte, s string) []byte { return appendString(dst, s) }
