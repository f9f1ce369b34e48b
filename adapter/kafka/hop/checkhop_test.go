package hop

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckJSONInvalidUTF8: hop's json, circular and external decoders
// decode the bytes as UTF-8 first, so Check refuses a value that is not.
func TestCheckJSONInvalidUTF8(t *testing.T) {
	for _, tc := range []struct{ format, value string }{
		{FormatJSON, "\"\xff\""},
		{FormatJSON, "{\"event\": \"S25\xff\"}"},
		{FormatCircular, "{\"header\": {}, \"body\": \"\xff\"}"},
		{FormatExternal, "{\"url\": \"https://x/\xff\"}"},
	} {
		if err := Check(tc.format, []byte(tc.value)); err == nil {
			t.Errorf("Check(%s, %q) = nil; hop's decoder fails on it (UnicodeDecodeError)", tc.format, tc.value)
		}
	}
	if err := Check(FormatJSON, []byte(`{"event": "S25é"}`)); err != nil {
		t.Errorf("Check(json, UTF-8 text): %v", err)
	}
}

// TestCheckVOEventFields: Check takes a VOEvent exactly when hop-client
// 0.13.0's VOEvent.deserialize does (each case was run through it): an
// ivorn, as attribute or element; no other unprefixed attribute or element
// than its model's fields (a default namespace declaration is one); no
// text in the root.
func TestCheckVOEventFields(t *testing.T) {
	const ns = `xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"`
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x" role="test" version="2.0"><Who/></voe:VOEvent>`, true},
		{`<voe:VOEvent ` + ns + `><ivorn>ivo://x</ivorn></voe:VOEvent>`, true},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x"><voe:Foo/></voe:VOEvent>`, true},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x"><Who/><Who/></voe:VOEvent>`, true},
		{`<voe:VOEvent ` + ns + ` ivorn="i" Who="w"/>`, true},
		{"<voe:VOEvent " + ns + " ivorn=\"i\">\n  <Who/>\n</voe:VOEvent>", true},
		{`<voe:VOEvent ` + ns + ` role="test" version="2.0"><Who/></voe:VOEvent>`, false},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x"><Extra/></voe:VOEvent>`, false},
		{`<voe:VOEvent ` + ns + `/>`, false},
		{`<voe:VOEvent ` + ns + ` xmlns="d" ivorn="ivo://x"/>`, false},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x">hello</voe:VOEvent>`, false},
	} {
		err := Check(FormatVOEvent, []byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("Check(voevent, %s) = %v; hop takes it: %v", tc.doc, err, tc.ok)
		}
	}
}

// TestCheckAvroRecords: hop's AvroBlob decodes an Avro object container
// holding exactly one record (its default, single_record): Check takes the
// messages of testdata/avro exactly when hop-client 0.13.0's consumer
// decodes them (verdicts.json, written by make_avro.py): not a file of
// several records (as AvroBlob(single_record=False) writes), nor none,
// nor one cut short.
func TestCheckAvroRecords(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "avro", "verdicts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var verdicts map[string]string
	if err := json.Unmarshal(b, &verdicts); err != nil {
		t.Fatal(err)
	}
	for name, verdict := range verdicts {
		value, err := os.ReadFile(filepath.Join("testdata", "avro", name+".avro"))
		if err != nil {
			t.Fatal(err)
		}
		err = Check(FormatAvro, value)
		if (err == nil) != (verdict == "ok") {
			t.Errorf("Check(avro, %s.avro) = %v; hop: %s", name, err, verdict)
		}
	}
}

// TestCheckVOEventWellFormed: hop parses a VOEvent with expat, which
// refuses more than Go's encoding/xml: a second element or text after the
// root (two VOEvents in one file), text before it, a repeated attribute,
// an XML declaration anywhere but at the start; and xmltodict refuses an
// entity declaration. Each case was run through
// hop-client 0.13.0's VOEvent.deserialize.
func TestCheckVOEventWellFormed(t *testing.T) {
	const ns = `xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"`
	const root = `<voe:VOEvent ` + ns + ` ivorn="ivo://x"/>`
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{root + `<voe:VOEvent ` + ns + ` ivorn="ivo://y"/>`, false},
		{root + `<Who/>`, false},
		{root + `junk`, false},
		{root + "\u00a0", false},
		{root + `<!DOCTYPE x>`, false},
		{`junk` + root, false},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x" ivorn="ivo://y"/>`, false},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x"><Who a="1" a="2"/></voe:VOEvent>`, false},
		{` <?xml version="1.0"?>` + root, false},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x"><?xml version="1.0"?></voe:VOEvent>`, false},
		{root + "\n<!-- end -->\n<?pi data?>\n", true},
		{"\ufeff<?xml version=\"1.0\"?>" + root, true},
		{"<?xml version=\"1.0\"?>\n<!-- c -->" + root + "\r\n", true},
		{`<voe:VOEvent ` + ns + ` ivorn="ivo://x" a:b="1" c:b="2"/>`, true},
		{`<!DOCTYPE voe:VOEvent [<!ENTITY a "b">]>` + root, false},
		{`<!DOCTYPE voe:VOEvent [<!ELEMENT a ANY>]>` + root, true},
		{`<!DOCTYPE voe:VOEvent SYSTEM "x.dtd">` + root, true},
	} {
		err := Check(FormatVOEvent, []byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("Check(voevent, %q) = %v; hop takes it: %v", tc.doc, err, tc.ok)
		}
	}
}

// TestCheckFormatCase: hop's consumer looks the model up by the _format
// header upper-cased (Deserializer.deserialize), so a message marked
// "JSON" or "VOEvent" is decoded as json or voevent and must fit it.
func TestCheckFormatCase(t *testing.T) {
	for _, tc := range []struct{ format, value string }{
		{"JSON", `{"a": 1`},
		{"Json", `not json`},
		{"VOEvent", `<VOEvent/>`},
		{"AVRO", `{}`},
		{"Circular", `{"header": {}}`},
	} {
		if !Checked(tc.format) {
			t.Errorf("Checked(%s) = false", tc.format)
		}
		err := Check(tc.format, []byte(tc.value))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Format != tc.format {
			t.Errorf("Check(%s, %q) = %v; hop decodes it as %s and fails", tc.format, tc.value, err, strings.ToLower(tc.format))
		}
	}
	if err := Check("JSON", []byte(`{"a": 1}`)); err != nil {
		t.Errorf("Check(JSON, valid JSON) = %v", err)
	}
}
