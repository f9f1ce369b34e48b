package hop

import (
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

// utf16Bytes encodes s in UTF-16, big-endian or little-endian, after a
// byte order mark if bom.
func utf16Bytes(s string, big, bom bool) []byte {
	var order binary.AppendByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	units := utf16.Encode([]rune(s))
	if bom {
		units = append([]uint16{0xfeff}, units...)
	}
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = order.AppendUint16(b, u)
	}
	return b
}

// TestCheckVOEventEncodings: hop reads a VOEvent with expat (xmltodict),
// which takes UTF-16 (by its byte order mark, or by the "<?" it starts
// with) and, declared in the XML declaration, US-ASCII, ISO-8859-1 and
// the other single-byte encodings Python knows; it refuses multi-byte
// ones but UTF-8 and UTF-16, unknown names, a byte the declared encoding
// does not define, and a declaration that names an encoding the bytes
// are not in. Each case was run through hop-client 0.13.0's
// VOEvent.deserialize and load_file, with the same outcome. Check
// refused every encoding but UTF-8 ('CharsetReader is nil', 'invalid
// UTF-8').
func TestCheckVOEventEncodings(t *testing.T) {
	const body = `<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x/y#1" role="test" version="2.0"><Who><Description>X</Description></Who></voe:VOEvent>`
	decl := func(enc string) string { return `<?xml version="1.0" encoding="` + enc + `"?>` }
	with := func(s, x string) string {
		for i := range len(s) {
			if s[i] == 'X' {
				return s[:i] + x + s[i+1:]
			}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		doc  []byte
		ok   bool
	}{
		{"ISO-8859-1", []byte(decl("ISO-8859-1") + with(body, "caf\xe9")), true},
		{"latin1", []byte(decl("latin1") + with(body, "caf\xe9")), true},
		{"single quotes", []byte(`<?xml version='1.0' encoding='iso-8859-1'?>` + with(body, "caf\xe9")), true},
		{"windows-1252", []byte(decl("windows-1252") + with(body, "\x80")), true},
		{"ISO-8859-15", []byte(decl("ISO-8859-15") + with(body, "\xa4")), true},
		{"KOI8-R", []byte(decl("KOI8-R") + with(body, "\xd6")), true},
		{"US-ASCII", []byte(decl("US-ASCII") + body), true},
		{"US-ASCII, a byte above 127", []byte(decl("US-ASCII") + with(body, "caf\xe9")), false},
		{"UTF-16LE with BOM", utf16Bytes(decl("UTF-16")+with(body, "café €"), false, true), true},
		{"UTF-16BE with BOM", utf16Bytes(decl("UTF-16")+with(body, "café €"), true, true), true},
		{"UTF-16LE no BOM", utf16Bytes(decl("UTF-16LE")+with(body, "café"), false, false), true},
		{"UTF-16BE no BOM", utf16Bytes(decl("UTF-16")+with(body, "café"), true, false), true},
		{"UTF-16 no declaration", utf16Bytes(with(body, "café"), false, true), true},
		{"UTF-16 declared ISO-8859-1", utf16Bytes(decl("ISO-8859-1")+body, false, true), false},
		{"UTF-8 declared UTF-16", []byte(decl("UTF-16") + body), false},
		{"Shift_JIS", []byte(decl("Shift_JIS") + with(body, "\x82\xa0")), false},
		{"Big5", []byte(decl("Big5") + body), false},
		{"unknown", []byte(decl("no-such-enc") + body), false},
		{"ISO-8859-1 undeclared", []byte(with(body, "caf\xe9")), false},
	} {
		err := Check(FormatVOEvent, tc.doc)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Check(voevent) = %v; hop takes it: %v", tc.name, err, tc.ok)
		}
	}
}

// TestCheckVOEventXMLVersion: hop's XML parser (expat) takes any version
// in the XML declaration made of name characters ("1.1", "2.0", even
// "abc"), and parses the document as XML 1.0; encoding/xml refused all but
// 1.0 ('unsupported version "1.1"'). Each case was run through hop-client
// 0.13.0's VOEvent.deserialize, with the same outcome. A VOEvent of
// version 1.1 (the VOEvent schema, not XML) was taken before already.
func TestCheckVOEventXMLVersion(t *testing.T) {
	const body = `<voe:VOEvent xmlns:voe="v" ivorn="i"/>`
	for _, tc := range []struct {
		decl string
		ok   bool
	}{
		{`<?xml version="1.1"?>`, true},
		{`<?xml version='1.1' encoding='UTF-8'?>`, true},
		{`<?xml version="2.0"?>`, true},
		{`<?xml version="abc"?>`, true},
		{`<?xml version=""?>`, true},
		{"<?xml\n  version = \"1.1\"?>", true},
		{"\ufeff<?xml version=\"1.1\"?>", true},
		{`<?xml version="1.0 "?>`, false},
	} {
		err := Check(FormatVOEvent, []byte(tc.decl+body))
		if (err == nil) != tc.ok {
			t.Errorf("Check(voevent, %s...) = %v; hop takes it: %v", tc.decl, err, tc.ok)
		}
	}
	doc := utf16Bytes(`<?xml version="1.1" encoding="UTF-16"?>`+body, false, true)
	if err := Check(FormatVOEvent, doc); err != nil {
		t.Errorf("UTF-16, XML 1.1: %v", err)
	}
}

// TestCheckVOEventPythonEncodingNames: hop's XML parser (pyexpat) hands
// an encoding name expat does not know itself (it knows UTF-8, UTF-16,
// ISO-8859-1 and US-ASCII) to Python's codec registry, which lowercases
// it, turns its punctuation into '_' and looks it up among Python's
// aliases: "cp1252", "latin-1", "ascii", "ISO8859_15", "mac-roman" are
// taken. Each document is what Python's ElementTree writes with that
// encoding name ("café € ü", characters the encoding lacks as
// references), and each verdict is hop-client 0.13.0's
// VOEvent.deserialize's. A UTF-8 spelling expat does not know ("utf8",
// "UTF8", "utf_8") reads no byte above 0x7f (pyexpat builds a single-byte
// table from Python's decoder), so hop refuses such a document with
// UTF-8 in it, and takes it in ASCII. Check refused every Python-only
// spelling ('unknown encoding "cp1252"').
func TestCheckVOEventPythonEncodingNames(t *testing.T) {
	doc := func(enc, text string) []byte {
		return []byte(`<?xml version='1.0' encoding='` + enc + `'?>` + "\n" +
			`<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://x/y#1" role="test" version="2.0"><Who><Description>` +
			text + `</Description></Who></voe:VOEvent>`)
	}
	for _, tc := range []struct {
		enc, text string
		ok        bool
	}{
		{"cp1252", "caf\xe9 \x80 \xfc", true},
		{"cp1250", "caf\xe9 \x80 \xfc", true},
		{"windows-1252", "caf\xe9 \x80 \xfc", true},
		{"latin-1", "caf\xe9 &#8364; \xfc", true},
		{"Latin-1", "caf\xe9 &#8364; \xfc", true},
		{"latin_1", "caf\xe9 &#8364; \xfc", true},
		{"latin1", "caf\xe9 &#8364; \xfc", true},
		{"L1", "caf\xe9 &#8364; \xfc", true},
		{"iso8859-1", "caf\xe9 &#8364; \xfc", true},
		{"ISO8859_15", "caf\xe9 \xa4 \xfc", true},
		{"latin9", "caf\xe9 \xa4 \xfc", true},
		{"iso8859_2", "caf\xe9 &#8364; \xfc", true},
		{"latin2", "caf\xe9 &#8364; \xfc", true},
		{"ascii", "caf&#233; &#8364; &#252;", true},
		{"US_ASCII", "caf&#233; &#8364; &#252;", true},
		{"mac-roman", "caf\x8e \xdb \x9f", true},
		{"koi8_r", "caf&#233; &#8364; &#252;", true},
		{"cp437", "caf\x82 &#8364; \x81", true},
		{"cp850", "caf\x82 &#8364; \x81", true},
		{"utf8", "caf\xc3\xa9 \xe2\x82\xac \xc3\xbc", false},
		{"UTF8", "caf\xc3\xa9 \xe2\x82\xac \xc3\xbc", false},
		{"utf_8", "caf\xc3\xa9 \xe2\x82\xac \xc3\xbc", false},
		{"utf8", "caf&#233; &#8364; &#252;", true},
		{"ascii", "caf\xe9", false},
	} {
		err := Check(FormatVOEvent, doc(tc.enc, tc.text))
		if (err == nil) != tc.ok {
			t.Errorf("%s, %q: Check(voevent) = %v; hop takes it: %v", tc.enc, tc.text, err, tc.ok)
		}
	}
}
