package hop

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestMarksHeaders(t *testing.T) {
	for _, tc := range []struct {
		m    Marks
		want []string
	}{
		{Marks{}, nil},
		{Marks{Format: FormatJSON}, []string{"_format=json"}},
		{Marks{Format: FormatBlob, Sender: "alice", Test: true}, []string{"_sender=alice", "_test=true", "_format=blob"}},
		{Marks{Test: true}, []string{"_test=true"}},
	} {
		var got []string
		for _, h := range tc.m.Headers() {
			got = append(got, h.Key+"="+string(h.Value))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: headers %q, want %q", tc.m, got, tc.want)
		}
	}
	r := NewRecord("alerts", []byte(`{"a":1}`), Marks{Format: FormatJSON})
	if r.Topic != "alerts" || string(r.Value) != `{"a":1}` || len(r.Headers) != 1 || r.Headers[0].Key != HeaderFormat {
		t.Errorf("NewRecord: %+v", r)
	}
	// Two records never share a header slice the caller could change.
	r2 := NewRecord("", nil, Marks{Format: FormatJSON})
	r2.Headers[0].Value[0] = 'X'
	if string(r.Headers[0].Value) != "json" {
		t.Errorf("records share header bytes: %q", r.Headers[0].Value)
	}
}

func TestCheck(t *testing.T) {
	voevent := `<?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x" role="test" version="2.0"><Who/></voe:VOEvent>`
	for _, tc := range []struct {
		format, value string
		ok            bool
	}{
		{FormatJSON, `{"a": [1, 2.5, "x", null, true]}`, true},
		{FormatJSON, `"just a string"`, true},
		{FormatJSON, `42`, true},
		{FormatJSON, `{"a": 1`, false},
		{FormatJSON, `{"a": 1} x`, false},
		{FormatJSON, ``, false},
		{FormatJSON, `nan`, false},
		{FormatCircular, `{"header": {"subject": "GRB"}, "body": "text"}`, true},
		{FormatCircular, `{"header": {}}`, false},
		{FormatCircular, `{"header": {}, "body": "", "extra": 1}`, false},
		{FormatCircular, `[1]`, false},
		{FormatCircular, `null`, false},
		{FormatExternal, `{"url": "https://example.org/x"}`, true},
		{FormatExternal, `{"uri": "x"}`, false},
		{FormatVOEvent, voevent, true},
		{FormatVOEvent, `<VOEvent/>`, false},
		{FormatVOEvent, `<voe:VOEvent xmlns:voe="x"><a></b></voe:VOEvent>`, false},
		{FormatVOEvent, `<voe:VOEvent xmlns:voe="x">`, false},
		{FormatVOEvent, `not xml`, false},
		{FormatGCNTextNotice, "TITLE: GCN\nNOTICE_DATE: today\n", true},
		{FormatGCNTextNotice, "TITLE: \xff\n", false},
		{FormatAvro, "Obj\x01\x04rest", false}, // a cut header: hop cannot read it
		{FormatAvro, "{}", false},
		{FormatBlob, "\x00\xff anything", true},
		{"someplugin", "\x00\xff anything", true},
	} {
		err := Check(tc.format, []byte(tc.value))
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s, %q) = %v, want ok %v", tc.format, tc.value, err, tc.ok)
		}
		if err != nil {
			var fe *FormatError
			if !errors.Is(err, ErrFormat) || !errors.As(err, &fe) || fe.Format != tc.format {
				t.Errorf("Check(%s, %q): error %#v is not a *FormatError for the format", tc.format, tc.value, err)
			}
		}
	}
	// A JSON syntax error keeps its offset.
	err := Check(FormatJSON, []byte(`{"a": }`))
	var se *json.SyntaxError
	if !errors.As(err, &se) || se.Offset != 7 {
		t.Errorf("syntax error: %v", err)
	}
	for _, f := range []string{FormatJSON, FormatAvro, FormatVOEvent, FormatGCNTextNotice, FormatCircular, FormatExternal} {
		if !Checked(f) {
			t.Errorf("Checked(%s) = false", f)
		}
	}
	if Checked(FormatBlob) || Checked("someplugin") {
		t.Error("Checked is true for an unchecked format")
	}
}

func ExampleNewRecord() {
	value := []byte(`{"event": "S250101a", "far": 1e-9}`)
	if err := Check(FormatJSON, value); err != nil {
		fmt.Println(err)
		return
	}
	rec := NewRecord("alerts", value, Marks{Format: FormatJSON, Sender: "alice", Test: true})
	// producer.Write(ctx, rec) adds the _id header.
	for _, h := range rec.Headers {
		fmt.Printf("%s=%s\n", h.Key, h.Value)
	}
	fmt.Println(Check(FormatJSON, []byte(`{"event": `)))
	// Output:
	// _sender=alice
	// _test=true
	// _format=json
	// not a valid json message: unexpected end of JSON input
}
