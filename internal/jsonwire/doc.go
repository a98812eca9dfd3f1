// Package jsonwire reads and writes the flat JSON objects of the system's wire
// formats (log records, feed entries, service requests and replies) without
// the reflection and allocations of encoding/json, and with its semantics:
// encoding/json is the contract, and this package is only a faster way to the
// same values and the same bytes.
//
// Reading: an Object reads one JSON object whose keys of interest, its Keys,
// hold strings, numbers, booleans or arrays; other keys' values are checked
// and skipped. Whatever it is not sure to read exactly as encoding/json
// decodes it into a struct whose fields are those keys (a key in another
// case, a key twice, null, an escaped key, invalid UTF-8, deep nesting...) it
// refuses, and the caller then decodes the input with encoding/json, which
// accepts it or says what is wrong. The typed accessors do the same for each
// value: they report false where encoding/json would decode differently or
// fail.
//
// Writing: AppendString writes a JSON string byte for byte as encoding/json
// does.
//
// The benchmarks (bench_test.go) measure each fast path beside encoding/json:
// BenchmarkReadReply, BenchmarkReadSetResult and BenchmarkReadStatuses read the
// service's replies about 4x to 7x faster, with fewer allocations, and
// BenchmarkAppendString writes a string about 2.5x faster. The fuzz tests hold
// the package to encoding/json. It imports nothing but the standard library,
// so that any package may use it.
package jsonwire
