package events

// The package's encoding/json path, for the tests and benchmarks that hold the
// fast paths to it: decoding with json.Unmarshal alone, encoding with
// json.Marshal.
var (
	DecodeEventJSON  = func(data []byte) (Event, error) { return decodeEvent(data, false) }
	DecodeChangeJSON = func(data []byte) (Change, error) { return decodeChange(data, false) }
	EncodeEventJSON  = encodeEventJSON
	EncodeChangeJSON = encodeChangeJSON
)
