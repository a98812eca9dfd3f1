package jsonwire

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// MaxKeys is the most keys a Keys may hold.
const MaxKeys = 16

// Keys is the list of keys an Object picks out of a JSON object: the JSON names
// of the fields of the struct that encoding/json would decode it into. A key is
// known by its index in the list. Keys are made once, with NewKeys, and are safe
// for concurrent use.
type Keys struct {
	names []string
}

// NewKeys returns the keys names, in that order. It panics unless there are at
// most MaxKeys names, each of printable ASCII without '"' or '\\' (as
// encoding/json's struct tags spell them), no two the same without regard to
// case: encoding/json matches keys without regard to case, and so these could
// not be told apart.
func NewKeys(names ...string) *Keys {
	if len(names) > MaxKeys {
		panic(fmt.Sprintf("jsonwire: %d keys; at most %d are supported", len(names), MaxKeys))
	}
	for i, name := range names {
		if name == "" {
			panic("jsonwire: empty key")
		}
		for j := range len(name) {
			if c := name[j]; c < ' ' || c > '~' || c == '"' || c == '\\' {
				panic(fmt.Sprintf("jsonwire: key %q: want printable ASCII without '\"' or '\\\\'", name))
			}
		}
		for _, other := range names[:i] {
			if asciiEqualFold([]byte(name), other) {
				panic(fmt.Sprintf("jsonwire: keys %q and %q are the same without regard to case", other, name))
			}
		}
	}
	return &Keys{names: slices.Clone(names)}
}

// index returns the index of the key spelled exactly key, or -1.
func (k *Keys) index(key []byte) int {
	for i, name := range k.names {
		if string(key) == name {
			return i
		}
	}
	return -1
}

// folds reports whether key, which is none of the keys, is one encoding/json
// would match to one of them anyway: in another case, or folded with Unicode.
func (k *Keys) folds(key []byte) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true // "ſ" folds to "s", "K" to "k": not worth telling apart
		}
	}
	for _, name := range k.names {
		if asciiEqualFold(key, name) {
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
