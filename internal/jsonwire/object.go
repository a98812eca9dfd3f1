package jsonwire

import "unicode/utf8"

// Kind is the kind of JSON value a key holds in an Object. It is a plain value.
type Kind uint8

// The kinds of values an Object reads for its keys. A key that holds null or an
// object makes the read fail: how encoding/json decodes those depends on the
// field's type.
const (
	Absent Kind = iota // the key is not in the object
	String             // a JSON string
	Number             // a JSON number
	Bool               // true or false
	Array              // a JSON array, of any values
)

// value is where the value of a key lies in the text.
type value struct {
	start, end int  // the text of the value; of a string, between its quotes
	kind       Kind // never Absent
	escaped    bool // a string that holds escapes
	integer    bool // a number without fraction or exponent
}

// Object is one JSON object as read: the values of its Keys, as places in the
// text it was read from, which it keeps and does not copy. Its zero value is
// ready to use; each read replaces what it held. An Object is small enough to
// live on the stack. It is not safe for concurrent use.
type Object struct {
	data   []byte
	seen   uint32 // the keys present, one bit each
	extra  bool   // a key not among the Keys was present
	values [MaxKeys]value
}

// Read reads data, which must be one JSON object and white space around it, and
// picks out the values of keys. It reports false when data is not an object it
// is sure to read exactly as encoding/json decodes it into a struct whose fields
// are keys: the caller then leaves data to encoding/json. A true result says
// that data is valid JSON and UTF-8, and that no key is there twice, in another
// case, or with null or an object for its value.
func (o *Object) Read(keys *Keys, data []byte) bool {
	s := scanner{data: data}
	if !o.read(keys, &s) {
		return false
	}
	s.skipSpace()
	return s.pos == len(data) && (!s.nonASCII || utf8.Valid(data))
}

// read reads one object at s.pos. It does not check UTF-8: that is done once,
// by the caller, for the whole text.
func (o *Object) read(keys *Keys, s *scanner) bool {
	o.data, o.seen, o.extra = s.data, 0, false
	s.skipSpace()
	if !s.consume('{') {
		return false
	}
	s.skipSpace()
	if s.consume('}') {
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		start, end, escaped, ok := s.readString()
		if !ok || escaped {
			return false // an escaped key could spell any of keys
		}
		key := s.data[start:end]
		s.skipSpace()
		if !s.consume(':') {
			return false
		}
		s.skipSpace()
		if i := keys.index(key); i >= 0 {
			if o.seen&(1<<i) != 0 {
				return false // encoding/json takes the last: leave it the choice
			}
			o.seen |= 1 << i
			if !s.readValue(&o.values[i]) {
				return false
			}
		} else {
			if keys.folds(key) || !s.skipValue(0) {
				return false
			}
			o.extra = true
		}
		s.skipSpace()
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
}

// readValue reads the value of a key into v.
func (s *scanner) readValue(v *value) bool {
	var ok bool
	switch c := s.peek(); {
	case c == '"':
		v.kind = String
		v.start, v.end, v.escaped, ok = s.readString()
		return ok
	case c == '[':
		v.kind, v.start = Array, s.pos
		ok = s.skipComposite(0)
	case c == 't' || c == 'f':
		v.kind, v.start = Bool, s.pos
		ok = s.literal("true") || s.literal("false")
	case c == '-' || isDigit(c):
		v.kind, v.start = Number, s.pos
		v.integer, ok = s.readNumber()
	}
	v.end = s.pos
	return ok
}

// Extra reports whether the object held keys other than its Keys, whose values
// were checked and skipped.
func (o *Object) Extra() bool { return o.extra }

// Kind returns the kind of the value of key i, Absent when it is not there.
func (o *Object) Kind(i int) Kind {
	if o.seen&(1<<i) == 0 {
		return Absent
	}
	return o.values[i].kind
}

// Raw returns the text of the value of key i, not copied: of a string, its text
// between the quotes, escapes as written; of a number, a boolean or an array,
// its JSON text. It returns nil when the key is absent.
func (o *Object) Raw(i int) []byte {
	if o.seen&(1<<i) == 0 {
		return nil
	}
	v := &o.values[i]
	return o.data[v.start:v.end]
}

// Escaped reports whether the value of key i is a string with escapes, whose Raw
// text is not its value.
func (o *Object) Escaped(i int) bool { return o.Kind(i) == String && o.values[i].escaped }

// String returns the value of key i as encoding/json decodes it into a string
// field: "" when absent. It reports false when the value is not a string.
func (o *Object) String(i int) (string, bool) {
	switch o.Kind(i) {
	case Absent:
		return "", true
	case String:
		if !o.values[i].escaped {
			return string(o.Raw(i)), true
		}
		var buf [64]byte
		return string(appendUnescaped(buf[:0], o.Raw(i))), true
	}
	return "", false
}

// AppendUnquoted appends the value of key i, a string, to dst with its escapes
// decoded, as String returns it, and returns the extended buffer. It appends
// nothing when the value is absent or not a string.
func (o *Object) AppendUnquoted(dst []byte, i int) []byte {
	if o.Kind(i) != String {
		return dst
	}
	if !o.values[i].escaped {
		return append(dst, o.Raw(i)...)
	}
	return appendUnescaped(dst, o.Raw(i))
}

// Int returns the value of key i as encoding/json decodes it into an int field:
// 0 when absent. It reports false when the value is not a number, or not one
// that encoding/json decodes into an int without an error.
func (o *Object) Int(i int) (int, bool) {
	switch o.Kind(i) {
	case Absent:
		return 0, true
	case Number:
	default:
		return 0, false
	}
	if !o.values[i].integer {
		return 0, false
	}
	digits := o.Raw(i)
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

// Uint64 returns the value of key i as encoding/json decodes it into a uint64
// field: 0 when absent. It reports false when the value is not a number, or not
// one that encoding/json decodes into a uint64 without an error.
func (o *Object) Uint64(i int) (uint64, bool) {
	switch o.Kind(i) {
	case Absent:
		return 0, true
	case Number:
	default:
		return 0, false
	}
	if !o.values[i].integer {
		return 0, false
	}
	return parseUint(o.Raw(i))
}

// parseUint parses the digits of a JSON integer, refusing a sign and overflow.
func parseUint(text []byte) (uint64, bool) {
	var n uint64
	for _, c := range text {
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

// Strings returns the value of key i as encoding/json decodes it into a
// []string field: nil when absent, and not nil when an empty array. It reports
// false when the value is not an array of strings.
func (o *Object) Strings(i int) ([]string, bool) {
	switch o.Kind(i) {
	case Absent:
		return nil, true
	case Array:
	default:
		return nil, false
	}
	v := &o.values[i]
	s := scanner{data: o.data[:v.end], pos: v.start + 1}
	out := []string{}
	s.skipSpace()
	if s.consume(']') {
		return out, true
	}
	for {
		if s.peek() != '"' {
			return nil, false
		}
		start, end, escaped, _ := s.readString() // checked by the read
		if escaped {
			out = append(out, string(appendUnescaped(nil, s.data[start:end])))
		} else {
			out = append(out, string(s.data[start:end]))
		}
		s.skipSpace()
		if s.consume(']') {
			return out, true
		}
		s.consume(',')
		s.skipSpace()
	}
}

// EachObject reads the value of key i, an array of objects, one element at a
// time with keys, as Read reads an object, and calls fn with each in order. The
// *Object is the same for every element and is only valid during the call. It
// reports whether the value is absent or an array of objects that were all
// read, fn returning true for each; it stops at the first that is not.
func (o *Object) EachObject(i int, keys *Keys, fn func(elem *Object) bool) bool {
	switch o.Kind(i) {
	case Absent:
		return true
	case Array:
	default:
		return false
	}
	v := &o.values[i]
	s := scanner{data: o.data[:v.end], pos: v.start + 1}
	var elem Object
	s.skipSpace()
	if s.consume(']') {
		return true
	}
	for {
		if !elem.read(keys, &s) || !fn(&elem) {
			return false
		}
		s.skipSpace()
		if s.consume(']') {
			return true
		}
		s.consume(',')
		s.skipSpace()
	}
}
