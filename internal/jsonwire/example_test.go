package jsonwire_test

import (
	"encoding/json"
	"fmt"

	"github.com/presence-engine/presence/internal/jsonwire"
)

// An Object reads what its Keys name; whatever it is not sure of goes to
// encoding/json.
func ExampleObject_Read() {
	keys := jsonwire.NewKeys("contact", "seq") // made once, shared
	const (
		contact = iota
		seq
	)
	for _, data := range []string{
		`{"contact":"sip:alice@contoso.com","seq":42,"note":"skipped"}`,
		`{"contact":"sip:bob@contoso.com","Seq":7}`, // another case: encoding/json decides
	} {
		var o jsonwire.Object
		var v struct {
			Contact string `json:"contact"`
			Seq     uint64 `json:"seq"`
		}
		var ok1, ok2 bool
		if o.Read(keys, []byte(data)) {
			v.Contact, ok1 = o.String(contact)
			v.Seq, ok2 = o.Uint64(seq)
		}
		path := "fast"
		if !ok1 || !ok2 {
			path = "encoding/json"
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				panic(err)
			}
		}
		fmt.Printf("%s: %+v\n", path, v)
	}
	// Output:
	// fast: {Contact:sip:alice@contoso.com Seq:42}
	// encoding/json: {Contact:sip:bob@contoso.com Seq:7}
}

// EachObject reads an array of objects, such as the statuses of a reply.
func ExampleObject_EachObject() {
	var (
		listKeys  = jsonwire.NewKeys("statuses")
		replyKeys = jsonwire.NewKeys("contact", "status")
	)
	data := []byte(`{"statuses":[{"contact":"a","status":"away"},{"contact":"b","status":"online"}]}`)
	var o jsonwire.Object
	ok := o.Read(listKeys, data) && o.EachObject(0, replyKeys, func(elem *jsonwire.Object) bool {
		contact, ok1 := elem.String(0)
		status, ok2 := elem.String(1)
		fmt.Println(contact, status)
		return ok1 && ok2
	})
	fmt.Println(ok)
	// Output:
	// a away
	// b online
	// true
}

func ExampleAppendString() {
	b := []byte(`{"name":`)
	b = jsonwire.AppendString(b, "Zoë <z&n>")
	fmt.Println(string(append(b, '}')))
	// Output: {"name":"Zoë \u003cz\u0026n\u003e"}
}
