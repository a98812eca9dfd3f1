package jsonwire_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// shapeCases are inputs of every shape: what the engine writes, other
// spellings the fast readers take, and what they leave to encoding/json. Every
// shape reads each as encoding/json does, or leaves it to encoding/json; the
// shape a case names reads it on the fast path when fast says so.
var shapeCases = []struct {
	name, shape, data string
	fast              bool
}{
	{"reply", "reply", `{"contact":"sip:alice@contoso.com","name":"Alice","status":"away","code":34,"seq":42}`, true},
	{"reply escaped", "reply", `{"contact":"sip:zo\u00eb@b\u00fccher.example","name":"\u003cZo\u00eb\u003e \u2028\ud83d\ude00\ud83d","status":"away","code":34,"seq":42}`, true},
	{"reply spaced, in another order", "reply", " {\n\t\"seq\" : 42 , \"code\":34,\"status\":\"away\",\"name\":\"\",\"contact\":\"a\"}\r\n", true},
	{"reply with an unknown field", "reply", `{"contact":"a","name":"","status":"away","code":34,"seq":42,"endpoint":{"id":[1,"x",null,true,{}]}}`, true},
	{"statuses", "statuses", `{"statuses":[{"contact":"a","name":"A","status":"away","code":34,"seq":1},{"contact":"b","name":"","status":"online","code":2,"seq":0}]}`, true},
	{"statuses empty", "statuses", `{"statuses":[]}`, true},
	{"statuses spaced", "statuses", `{ "statuses" : [ { "contact" : "a" } , {} ] }`, true},
	{"statuses absent", "statuses", `{}`, true},
	{"statuses with null", "statuses", `{"statuses":[null]}`, false},
	{"statuses with an array", "statuses", `{"statuses":[[]]}`, false},
	{"statuses with a bad reply", "statuses", `{"statuses":[{"contact":"a"},{"seq":-1}]}`, false},
	{"statuses not an array", "statuses", `{"statuses":{}}`, false},
	{"statuses null", "statuses", `{"statuses":null}`, false},
	{"set request", "set request", `{"status":"away","name":"Alice","request_id":"r-1","expect_seq":7,"cause":"user"}`, true},
	{"set request, status only", "set request", `{"status":"away"}`, true},
	{"set request, expect_seq 0", "set request", `{"status":"away","expect_seq":0}`, true},
	{"set request, status a number", "set request", `{"status":34}`, false},
	{"set request with an unknown field", "set request", `{"status":"away","note":"x"}`, false},
	{"read request", "read request", `{"min_seq":42}`, true},
	{"read request empty", "read request", `{}`, true},
	{"read request, min_seq fraction", "read request", `{"min_seq":1.5}`, false},
	{"statuses request", "statuses request", `{"contacts":["sip:alice@contoso.com","b\u00e9",""],"min_seq":42}`, true},
	{"statuses request, no contacts", "statuses request", `{"contacts":[]}`, true},
	{"statuses request, contacts null", "statuses request", `{"contacts":null}`, false},
	{"statuses request, a contact a number", "statuses request", `{"contacts":["a",1]}`, false},
	{"statuses request, a contact null", "statuses request", `{"contacts":["a",null]}`, false},
	// Numbers.
	{"code negative", "reply", `{"code":-34}`, true},
	{"code minus zero", "reply", `{"code":-0}`, true},
	{"code fraction", "reply", `{"code":34.0}`, false},
	{"code exponent", "reply", `{"code":3e1}`, false},
	{"code 19 digits", "reply", `{"code":1000000000000000000}`, false},
	{"code past int64", "reply", `{"code":9223372036854775808}`, false},
	{"code string", "reply", `{"code":"34"}`, false},
	{"seq largest", "reply", `{"seq":18446744073709551615}`, true},
	{"seq past uint64", "reply", `{"seq":18446744073709551616}`, false},
	{"seq negative", "reply", `{"seq":-1}`, false},
	{"seq minus zero", "reply", `{"seq":-0}`, false},
	// Keys left to encoding/json.
	{"key in capitals", "reply", `{"Contact":"a"}`, false},
	{"key in capitals, unknown", "reply", `{"Endpoint":"a"}`, true},
	{"key twice", "reply", `{"contact":"a","contact":"b"}`, false},
	{"key escaped", "reply", `{"\u0063ontact":"a"}`, false},
	{"key folded with Unicode", "reply", `{"ſeq":1}`, false},
	{"key null", "reply", `{"contact":null}`, false},
	{"key an object", "reply", `{"contact":{}}`, false},
	{"nested deeper than followed", "reply", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, false},
	// Not objects, or not JSON.
	{"empty", "reply", ``, false},
	{"null", "reply", `null`, false},
	{"array", "reply", `[]`, false},
	{"string", "reply", `"a"`, false},
	{"two objects", "reply", `{}{}`, false},
	{"trailing comma", "reply", `{"seq":1,}`, false},
	{"cut", "reply", `{"seq":1`, false},
	{"raw control character", "reply", "{\"name\":\"\x01\"}", false},
	{"bad escape", "reply", `{"name":"\x"}`, false},
	{"invalid UTF-8", "reply", "{\"name\":\"\xff\"}", false},
	{"invalid UTF-8 skipped", "reply", "{\"note\":\"\xc3\"}", false},
	{"byte order mark", "reply", "\ufeff{}", false},
	{"leading zero", "reply", `{"seq":01}`, false},
	{"empty fraction", "reply", `{"seq":1.}`, false},
}

// checkShapes checks that every shape that reads data on the fast path reads
// it as encoding/json does, and returns the names of those that did.
func checkShapes(t *testing.T, data []byte) (fast []string) {
	t.Helper()
	for _, sh := range shapes {
		got, ok := sh.fast(data)
		if !ok {
			continue
		}
		fast = append(fast, sh.name)
		want, err := sh.json(data)
		if err != nil {
			t.Fatalf("%s: fast path read %q as %+v; encoding/json: %v", sh.name, data, got, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: fast path read %q as %#v; encoding/json as %#v", sh.name, data, got, want)
		}
	}
	return fast
}

func TestShapesMatchJSON(t *testing.T) {
	for _, tc := range shapeCases {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.ContainsFunc(shapes, func(sh shape) bool { return sh.name == tc.shape }) {
				t.Fatalf("no shape %q", tc.shape)
			}
			fast := slices.Contains(checkShapes(t, []byte(tc.data)), tc.shape)
			if fast != tc.fast {
				t.Errorf("%s read %q on the fast path: %v, want %v", tc.shape, tc.data, fast, tc.fast)
			}
		})
	}
}

// allNames are the keys of every shape together.
var (
	allNames = []string{"contact", "name", "status", "code", "previous", "seq", "changed", "statuses",
		"request_id", "expect_seq", "cause", "min_seq", "contacts"}
	allKeys = jsonwire.NewKeys(allNames...)
)

// FuzzReadMatchesJSON holds the reader to encoding/json: every shape reads an
// input as encoding/json does, or leaves it; and what Read takes is valid
// JSON.
func FuzzReadMatchesJSON(f *testing.F) {
	for _, tc := range shapeCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkShapes(t, data)
		var o jsonwire.Object
		if o.Read(allKeys, data) && !json.Valid(data) {
			t.Fatalf("Read took %q, which is not valid JSON", data)
		}
	})
}

func TestObjectValues(t *testing.T) {
	keys := jsonwire.NewKeys("s", "e", "n", "b", "a", "x")
	data := []byte(`{"s":"plain","e":"a\u0041\n","n":-1.5e3,"b":false,"a":[1,"]",{"a":[]}],"other":1}`)
	var o jsonwire.Object
	if !o.Read(keys, data) {
		t.Fatalf("Read(%s) = false", data)
	}
	tests := []struct {
		key     int
		kind    jsonwire.Kind
		raw     string
		escaped bool
	}{
		{0, jsonwire.String, `plain`, false},
		{1, jsonwire.String, `a\u0041\n`, true},
		{2, jsonwire.Number, `-1.5e3`, false},
		{3, jsonwire.Bool, `false`, false},
		{4, jsonwire.Array, `[1,"]",{"a":[]}]`, false},
		{5, jsonwire.Absent, ``, false},
	}
	for _, tc := range tests {
		if got := o.Kind(tc.key); got != tc.kind {
			t.Errorf("Kind(%d) = %v, want %v", tc.key, got, tc.kind)
		}
		if got := string(o.Raw(tc.key)); got != tc.raw {
			t.Errorf("Raw(%d) = %q, want %q", tc.key, got, tc.raw)
		}
		if got := o.Escaped(tc.key); got != tc.escaped {
			t.Errorf("Escaped(%d) = %v, want %v", tc.key, got, tc.escaped)
		}
	}
	if o.Raw(5) != nil {
		t.Errorf("Raw of an absent key = %q, want nil", o.Raw(5))
	}
	if !o.Extra() {
		t.Errorf("Extra() = false with a key \"other\"")
	}
	if got := string(o.AppendUnquoted([]byte("x:"), 1)); got != "x:aA\n" {
		t.Errorf("AppendUnquoted(x:, 1) = %q, want %q", got, "x:aA\n")
	}
	if got := string(o.AppendUnquoted([]byte("x:"), 2)); got != "x:" {
		t.Errorf("AppendUnquoted of a number = %q, want nothing appended", got)
	}
	if _, ok := o.Int(2); ok {
		t.Errorf("Int of -1.5e3 reports ok")
	}
	if _, ok := o.Strings(4); ok {
		t.Errorf("Strings of an array with a number reports ok")
	}
	// A read replaces all that the object held.
	if !o.Read(keys, []byte(`{"n":1}`)) || o.Kind(0) != jsonwire.Absent || o.Extra() {
		t.Errorf("after a second Read: Kind(0) = %v, Extra() = %v; want Absent, false", o.Kind(0), o.Extra())
	}
}

func TestEachObjectStops(t *testing.T) {
	keys := jsonwire.NewKeys("list")
	elemKeys := jsonwire.NewKeys("n")
	var o jsonwire.Object
	if !o.Read(keys, []byte(`{"list":[{"n":1},{"n":2},{"n":3}]}`)) {
		t.Fatal("Read = false")
	}
	var seen []int
	ok := o.EachObject(0, elemKeys, func(elem *jsonwire.Object) bool {
		n, _ := elem.Int(0)
		seen = append(seen, n)
		return n < 2
	})
	if ok || !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("EachObject stopping at 2 = %v after %v; want false after [1 2]", ok, seen)
	}
}

func TestNewKeysPanics(t *testing.T) {
	for _, names := range [][]string{
		{"a", "A"}, {"contact", "Contact"}, {"a", "a"}, {""}, {"a\"b"}, {"a\\b"}, {"\x01"}, {"é"},
		slices.Repeat([]string{"k"}, jsonwire.MaxKeys+1),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewKeys(%q) did not panic", names)
				}
			}()
			jsonwire.NewKeys(names...)
		}()
	}
	many := make([]string, jsonwire.MaxKeys)
	for i := range many {
		many[i] = string(rune('a' + i))
	}
	jsonwire.NewKeys(many...) // does not panic
}
