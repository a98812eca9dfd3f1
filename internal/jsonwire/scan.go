package jsonwire

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is how deep a scanner follows arrays and objects; deeper ones are
// left to encoding/json, which has limits of its own.
const maxDepth = 32

// scanner checks JSON text, the grammar of RFC 8259, from pos on.
type scanner struct {
	data     []byte
	pos      int
	nonASCII bool // a byte past ASCII was seen: the text needs a UTF-8 check
}

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// plainString holds the bytes that stand for themselves in a JSON string and
// need no check: ASCII but the control characters, '"' and '\\'.
var plainString = func() (plain [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// readString reads a JSON string at pos, checking its escapes, and returns
// where its text lies between the quotes.
func (s *scanner) readString() (start, end int, escaped, ok bool) {
	data := s.data
	i := s.pos + 1 // past the opening quote
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
			s.pos = i + 1
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
			s.nonASCII = true
			i++
		}
	}
}

// readNumber reads a JSON number at pos and reports whether it is an integer:
// without fraction or exponent.
func (s *scanner) readNumber() (integer, ok bool) {
	integer = true
	s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case '1' <= c && c <= '9':
		s.skipDigits()
	default:
		return false, false
	}
	if s.consume('.') {
		integer = false
		if !isDigit(s.peek()) {
			return false, false
		}
		s.skipDigits()
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		integer = false
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !isDigit(s.peek()) {
			return false, false
		}
		s.skipDigits()
	}
	return integer, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *scanner) skipDigits() {
	for s.pos < len(s.data) && isDigit(s.data[s.pos]) {
		s.pos++
	}
}

// skipValue reads any JSON value at pos, checking it.
func (s *scanner) skipValue(depth int) bool {
	switch s.peek() {
	case '"':
		_, _, _, ok := s.readString()
		return ok
	case '{', '[':
		return depth < maxDepth && s.skipComposite(depth)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.readNumber()
	return ok
}

// skipComposite reads an object or an array at pos, checking it.
func (s *scanner) skipComposite(depth int) bool {
	object := s.data[s.pos] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	s.pos++
	s.skipSpace()
	if s.consume(closing) {
		return true
	}
	for {
		if object {
			if s.peek() != '"' {
				return false
			}
			if _, _, _, ok := s.readString(); !ok {
				return false
			}
			s.skipSpace()
			if !s.consume(':') {
				return false
			}
			s.skipSpace()
		}
		if !s.skipValue(depth + 1) {
			return false
		}
		s.skipSpace()
		if s.consume(closing) {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
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
