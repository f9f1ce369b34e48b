package hop

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
)

// The headers hop-client puts on every message it publishes (hop.io.Producer.pack).
const (
	HeaderID     = "_id"     // 16 bytes: the message's UUID; the robust producer adds one at Write
	HeaderFormat = "_format" // the model's format name, such as "json": consumers decode by it
	HeaderSender = "_sender" // the user name the publisher authenticated as
	HeaderTest   = "_test"   // "true": a test message, which hop's consumers skip by default
)

// The format names of hop-client 0.13's own models (hop.models), the values
// of the _format header. Plugins may add others.
const (
	FormatBlob          = "blob"          // Blob: bytes, unchecked
	FormatJSON          = "json"          // JSONBlob: any JSON value
	FormatVOEvent       = "voevent"       // VOEvent: XML with a voe:VOEvent root
	FormatAvro          = "avro"          // AvroBlob: an Avro object container file
	FormatGCNTextNotice = "gcntextnotice" // GCNTextNotice: UTF-8 "key: value" text
	FormatCircular      = "circular"      // GCNCircular: a JSON object {"header": {...}, "body": "..."}
	FormatExternal      = "external"      // ExternalMessage: a JSON object {"url": "..."}
)

// testValue is the value hop gives the _test header.
const testValue = "true"

// Marks are the hop headers of a message besides its _id.
type Marks struct {
	// Format is the _format header, such as FormatJSON; "" leaves the
	// header out, and hop's consumers then read valid JSON as a JSONBlob
	// and anything else as a Blob.
	Format string
	// Sender is the _sender header, the name the publisher authenticates
	// as; "" leaves it out, as hop does when it publishes without
	// credentials.
	Sender string
	// Test adds the _test header ("true"): hop's consumers skip the
	// message unless asked not to (ignoretest=False).
	Test bool
}

// Headers returns m's headers in the order hop-client writes them:
// _sender, _test, _format. A Marks with nothing set returns nil.
func (m Marks) Headers() []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	if m.Sender != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderSender, Value: []byte(m.Sender)})
	}
	if m.Test {
		hs = append(hs, kgo.RecordHeader{Key: HeaderTest, Value: []byte(testValue)})
	}
	if m.Format != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderFormat, Value: []byte(m.Format)})
	}
	return hs
}

// NewRecord returns a record for topic ("" for the producer's URL topic)
// with value and m's headers, such as hop-client publishes. It has no _id
// header: the robust producer's Write adds one, a random version 4 UUID as
// hop's. NewRecord does not check value; see Check.
func NewRecord(topic string, value []byte, m Marks) *kgo.Record {
	return &kgo.Record{Topic: topic, Value: value, Headers: m.Headers()}
}

// ErrFormat is matched (errors.Is) by every error of Check.
var ErrFormat = errors.New("hop: the message does not fit its format")

// FormatError says why a message does not fit its format.
type FormatError struct {
	Format string
	Err    error // the cause, such as a *json.SyntaxError
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("not a valid %s message: %v", e.Format, e.Err)
}

// Unwrap returns the cause.
func (e *FormatError) Unwrap() error { return e.Err }

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Checked reports whether Check looks inside messages of format: it does
// for every format of hop-client's own models except blob, and for no
// other. As in hop, case does not matter: "JSON" is json.
func Checked(format string) bool {
	switch model(format) {
	case FormatJSON, FormatVOEvent, FormatAvro, FormatGCNTextNotice, FormatCircular, FormatExternal:
		return true
	}
	return false
}

// Check reports whether hop-client's model for format can decode value,
// as far as that can be told without hop: a json message must be valid
// JSON as Python's json reads it (NaN, Infinity and -Infinity are values
// too); circular and external messages JSON objects with exactly the
// fields of their model (header and body; url); a voevent well-formed XML whose root element is
// voe:VOEvent, in an encoding hop's XML parser reads (see xmlInput); a gcntextnotice UTF-8 text; an avro message an Avro object
// container file holding exactly one record (its records not decoded).
// Blobs, and formats that hop-client 0.13 does not know, are not checked.
// The format's case does not matter, as in hop. The error is a
// *FormatError.
func Check(format string, value []byte) error {
	var err error
	switch model(format) {
	case FormatJSON:
		err = checkJSON(value)
	case FormatCircular:
		err = checkObject(value, "header", "body")
	case FormatExternal:
		err = checkObject(value, "url")
	case FormatVOEvent:
		err = checkVOEvent(value)
	case FormatGCNTextNotice:
		if !utf8.Valid(value) {
			err = errors.New("not UTF-8 text")
		}
	case FormatAvro:
		err = checkAvro(value)
	}
	if err != nil {
		return &FormatError{Format: format, Err: err}
	}
	return nil
}

// checkAvro checks that value is an Avro object container file (header
// with its metadata map and sync marker, then blocks each ending in that
// marker) holding exactly one record: hop's AvroBlob decodes a message as
// a single record and fails on a file of none or several. The records
// themselves are not decoded.
//
// The framing is read here, with encoding/binary's varints, rather than
// through an Avro library's container reader (github.com/hamba/avro/v2's
// ocf.Decoder, say): that one allocates each block at the size the file
// claims, whatever the file's length (a few bytes claiming terabytes
// take the process down), and decodes every record with its own decoder,
// whose disagreements with hop's (fastavro) would refuse messages hop
// reads. Here no length is trusted beyond the bytes at hand.
func checkAvro(value []byte) error {
	const syncLen = 16
	rest, ok := bytes.CutPrefix(value, []byte("Obj\x01"))
	if !ok {
		return errors.New(`no Avro object container header ("Obj" 1)`)
	}
	d := avroReader{b: rest}
	schema := false
	for {
		n := d.long()
		if n == 0 || d.err != nil {
			break
		}
		if n < 0 { // a block of -n entries, its byte size next
			n = -n
			d.long()
		}
		for ; n > 0 && d.err == nil; n-- {
			schema = string(d.bytes()) == "avro.schema" || schema
			d.bytes()
		}
	}
	sync := d.take(syncLen)
	if d.err != nil {
		return fmt.Errorf("the Avro header: %w", d.err)
	}
	if !schema {
		return errors.New("the Avro header has no avro.schema")
	}
	records := int64(0)
	for len(d.b) > 0 && d.err == nil {
		count, size := d.long(), d.long()
		if count < 0 || size < 0 {
			d.err = errors.New("negative block count or size")
		}
		d.take(size)
		if s := d.take(syncLen); d.err == nil && !bytes.Equal(s, sync) {
			d.err = errors.New("block not followed by the sync marker")
		}
		if records += count; records > 1 {
			break // the count could wrap around
		}
	}
	if d.err != nil {
		return fmt.Errorf("an Avro data block: %w", d.err)
	}
	if records != 1 {
		return fmt.Errorf("%d Avro records; hop's AvroBlob takes exactly one", records)
	}
	return nil
}

// avroReader reads the zigzag varint longs and length-prefixed bytes of
// an Avro container; the first failure sticks in err.
type avroReader struct {
	b   []byte
	err error
}

func (d *avroReader) long() int64 {
	if d.err != nil {
		return 0
	}
	u, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad or missing length")
		return 0
	}
	d.b = d.b[n:]
	return int64(u>>1) ^ -int64(u&1)
}

func (d *avroReader) take(n int64) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > int64(len(d.b)) {
		d.err = io.ErrUnexpectedEOF
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *avroReader) bytes() []byte { return d.take(d.long()) }

// model returns the name of the model hop's consumer decodes a message
// of format with, as one of the Format constants: it looks models up by
// the format upper-cased, so "JSON" is json.
func model(format string) string {
	return strings.ToLower(strings.ToUpper(format))
}

func checkJSON(value []byte) error {
	_, err := pythonJSON(value)
	return err
}

// pythonJSON checks that value is JSON as hop reads it and returns it in
// a form encoding/json takes: value itself, or a copy with NaN and
// Infinity replaced by numbers (see below).
func pythonJSON(value []byte) ([]byte, error) {
	// hop decodes the bytes as UTF-8 first, which Go's JSON does not ask.
	if !utf8.Valid(value) {
		return nil, errors.New("not UTF-8 text")
	}
	if json.Valid(value) {
		return value, nil
	}
	// hop decodes with Python's json.loads, which also takes NaN,
	// Infinity and -Infinity where a value may stand (and json.dumps
	// writes them). In a copy, each such token outside a string right
	// after the start, '[', ',' or ':' (and white space) becomes a number
	// of the same length ("0" then spaces), so that encoding/json checks
	// the rest and its offsets are those of value. If the copy is valid,
	// every string was where this pass saw it and every token replaced
	// stood for a value (a number elsewhere is invalid too).
	b := slices.Clone(value)
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == 'N' || c == 'I':
			if n := nonFinite(b, i); n > 0 {
				b[i] = '0'
				for j := i + 1; j < i+n; j++ {
					b[j] = ' '
				}
				i += n - 1
			}
		}
	}
	if json.Valid(b) {
		return b, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err // a *json.SyntaxError with the offset
	}
	return nil, errors.New("invalid JSON")
}

// nonFinite returns the length of the NaN or Infinity token at b[at], or
// 0 unless one is there where Python's json takes it: where a value
// starts (at the start, or after '[', ',' or ':' and white space),
// Infinity also right after such a '-'.
func nonFinite(b []byte, at int) int {
	n := 0
	switch {
	case bytes.HasPrefix(b[at:], []byte("NaN")):
		n = 3
	case bytes.HasPrefix(b[at:], []byte("Infinity")):
		n = 8
		if at > 0 && b[at-1] == '-' {
			at--
		}
	default:
		return 0
	}
	before := bytes.TrimRight(b[:at], " \t\r\n")
	if len(before) == 0 || bytes.IndexByte([]byte("[,:"), before[len(before)-1]) >= 0 {
		return n
	}
	return 0
}

// checkObject checks that value is a JSON object with exactly the fields
// named, as hop builds its dataclass models from them
// (cls(**json.loads(data)) fails on a missing or an unexpected field).
func checkObject(value []byte, fields ...string) error {
	value, err := pythonJSON(value)
	if err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(value, &obj); err != nil || obj == nil {
		return errors.New("not a JSON object")
	}
	for _, name := range fields {
		if _, ok := obj[name]; !ok {
			return fmt.Errorf("no %q field", name)
		}
	}
	for name := range obj {
		if !slices.Contains(fields, name) {
			return fmt.Errorf("unexpected field %q", name)
		}
	}
	return nil
}

// voeventFields are the names hop's VOEvent model takes: its load builds
// one from the root element's attributes and child elements whose names
// have no prefix (xmltodict, attributes unprefixed), so any other such name
// fails it, and so does text in the root, or a missing ivorn. _raw, its
// field for the message's bytes, is taken too (load overwrites it).
var voeventFields = []string{"ivorn", "role", "version", "Who", "What", "WhereWhen", "How", "Why", "Citations", "Description", "Reference"}

// checkVOEvent checks that value is well-formed XML whose root element is
// voe:VOEvent (hop looks the root up under that prefixed name) and that
// hop's VOEvent model takes its attributes and elements (voeventFields).
// Besides what encoding/xml refuses, it refuses what hop's parser (expat)
// does and encoding/xml takes: an element, text or declaration after the
// root (two documents in one), text before it, an attribute given twice,
// an XML declaration anywhere but at the start, an entity declaration
// (xmltodict's).
func checkVOEvent(value []byte) error {
	value, charset, err := xmlInput(value)
	if err != nil {
		return err
	}
	raw := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(value, []byte("\ufeff"))))
	raw.CharsetReader = charset
	depth, ivorn, rootDone := 0, false, false
	field := func(what string, n xml.Name) error {
		if n.Space != "" || n.Local == "_raw" {
			return nil // left out by hop; _raw: taken, then set to the message
		}
		if !slices.Contains(voeventFields, n.Local) {
			return fmt.Errorf("unexpected %s %q in voe:VOEvent (hop's VOEvent takes %s)", what, n.Local, strings.Join(voeventFields, ", "))
		}
		ivorn = ivorn || n.Local == "ivorn"
		return nil
	}
root:
	for {
		start := raw.InputOffset()
		tok, err := raw.RawToken()
		if err != nil {
			if err == io.EOF {
				if depth == 0 && !rootDone {
					return errors.New("no root element")
				}
				break root // the full parse below says what is wrong
			}
			return err
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if rootDone {
				return fmt.Errorf("element %s after the root element", xmlName(tk.Name))
			}
			for i, a := range tk.Attr {
				if slices.ContainsFunc(tk.Attr[:i], func(b xml.Attr) bool { return b.Name == a.Name }) {
					return fmt.Errorf("attribute %s given twice in %s", xmlName(a.Name), xmlName(tk.Name))
				}
			}
			depth++
			switch depth {
			case 1:
				if tk.Name.Space != "voe" || tk.Name.Local != "VOEvent" {
					return fmt.Errorf("the root element is %s, not voe:VOEvent", xmlName(tk.Name))
				}
				for _, a := range tk.Attr {
					if err := field("attribute", a.Name); err != nil {
						return err
					}
				}
			case 2:
				if err := field("element", tk.Name); err != nil {
					return err
				}
			}
		case xml.EndElement:
			if depth--; depth == 0 {
				rootDone = true
			}
		case xml.CharData:
			if depth == 0 && len(bytes.Trim(tk, " \t\r\n")) > 0 {
				return errors.New("text outside the root element")
			}
			if depth == 1 && len(bytes.TrimSpace(tk)) > 0 {
				return errors.New("text in voe:VOEvent (hop's VOEvent takes elements and attributes only)")
			}
		case xml.ProcInst:
			if tk.Target == "xml" && start != 0 {
				return errors.New("an XML declaration not at the start")
			}
		case xml.Directive:
			if depth > 0 || rootDone {
				return errors.New("a <!...> declaration after the start of the root element")
			}
			if bytes.Contains(tk, []byte("<!ENTITY")) {
				return errors.New("an entity declaration (hop's parser refuses them)")
			}
		}
	}
	if !ivorn {
		return errors.New("voe:VOEvent has no ivorn (hop's VOEvent requires one)")
	}
	d := xml.NewDecoder(bytes.NewReader(value))
	d.CharsetReader = charset
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// xmlInput returns value as hop's XML parser (expat) reads it, in
// UTF-8, and the CharsetReader for the encoding its XML declaration
// names. expat tells UTF-16 by its byte order mark or by the "<" it
// starts with (00 3C or 3C 00), and takes a declaration of US-ASCII or
// of a single-byte encoding Python knows (ISO-8859-1, windows-1252,
// KOI8-R, ..., by IANA's names or Python's; see lookupEncoding); it refuses
// multi-byte encodings but UTF-8 and UTF-16, unknown names, a byte the
// encoding does not define, and a declaration of UTF-16 in a message
// that is not, or of another encoding in one that is.
func xmlInput(value []byte) ([]byte, func(string, io.Reader) (io.Reader, error), error) {
	var order unicode.Endianness
	switch {
	case bytes.HasPrefix(value, []byte{0xfe, 0xff}), bytes.HasPrefix(value, []byte{0x00, '<'}):
		order = unicode.BigEndian
	case bytes.HasPrefix(value, []byte{0xff, 0xfe}), bytes.HasPrefix(value, []byte{'<', 0x00}):
		order = unicode.LittleEndian
	default:
		return anyXMLVersion(value), singleByteCharset, nil
	}
	utf8Value, err := unicode.UTF16(order, unicode.UseBOM).NewDecoder().Bytes(value)
	if err != nil {
		return nil, nil, fmt.Errorf("not UTF-16: %w", err)
	}
	utf8Value = anyXMLVersion(utf8Value)
	charset := func(label string, input io.Reader) (io.Reader, error) {
		switch strings.ToUpper(label) {
		case "UTF-16", "UTF-16LE", "UTF-16BE":
			return input, nil // transcoded already
		}
		return nil, fmt.Errorf("the XML declaration names encoding %q, but the message is in UTF-16", label)
	}
	return utf8Value, charset, nil
}

// xmlVersion finds the version in an XML declaration at the start of a
// document: its value is submatch 2 or 3.
var xmlVersion = regexp.MustCompile(`^(?:\x{FEFF})?<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"([-A-Za-z0-9._:]*)"|'([-A-Za-z0-9._:]*)')`)

// anyXMLVersion returns doc with the version its XML declaration names,
// if not 1.0 but made of name characters, replaced by 1.0 (in a copy):
// expat takes any such version (and parses XML 1.0), encoding/xml only
// 1.0.
func anyXMLVersion(doc []byte) []byte {
	m := xmlVersion.FindSubmatchIndex(doc)
	if m == nil {
		return doc
	}
	start, end := m[2], m[3]
	if start < 0 {
		start, end = m[4], m[5]
	}
	if v := string(doc[start:end]); v == "1.0" || v == "" {
		return doc
	}
	return slices.Concat(doc[:start], []byte("1.0"), doc[end:])
}

// singleByteCharset is the CharsetReader for a message not in UTF-16: it
// reads the rest of the message in the single-byte encoding label names.
func singleByteCharset(label string, input io.Reader) (io.Reader, error) {
	if strings.HasPrefix(strings.ToUpper(label), "UTF-16") {
		return nil, fmt.Errorf("the XML declaration names encoding %q, but the message is not in UTF-16", label)
	}
	enc, err := lookupEncoding(label)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("unknown encoding %q", label)
	}
	name, _ := ianaindex.IANA.Name(enc)
	cm, single := enc.(*charmap.Charmap)
	if !single && name != "US-ASCII" {
		return nil, fmt.Errorf("encoding %q: hop's XML parser (expat) refuses multi-byte encodings but UTF-8 and UTF-16", label)
	}
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	for _, c := range b {
		if !single && c > 0x7f || single && cm.DecodeByte(c) == utf8.RuneError {
			return nil, fmt.Errorf("byte 0x%02x is not a character of encoding %q", c, label)
		}
	}
	if !single {
		return bytes.NewReader(b), nil
	}
	text, err := cm.NewDecoder().Bytes(b)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(text), nil
}

// lookupEncoding returns the encoding label names for hop's XML parser:
// one of IANA's names, or a spelling of Python's codec registry, to which
// pyexpat hands every name expat does not know. Python lowercases the
// name, makes each run of characters but letters, digits and '.' one '_'
// (codecs.lookup, encodings.normalize_encoding) and looks that up among
// its aliases; the common ones are mapped here onto IANA's names, the rest
// tried as IANA's with '-' for '_'. Python's UTF-8 is US-ASCII here: pyexpat
// reads an encoding through a table of single bytes, where UTF-8 defines
// none above 0x7f.
func lookupEncoding(label string) (encoding.Encoding, error) {
	if enc, err := ianaindex.IANA.Encoding(label); err == nil && enc != nil {
		return enc, nil
	}
	name := pythonCodecName(label)
	if canonical, ok := pythonAliases[name]; ok {
		name = canonical
	}
	iana := strings.ReplaceAll(name, "_", "-")
	digits, cp := strings.CutPrefix(name, "cp")
	switch {
	case name == "ascii", name == "utf_8", name == "utf_8_sig":
		iana = "US-ASCII"
	case name == "latin_1":
		iana = "ISO-8859-1"
	case name == "mac_roman":
		iana = "macintosh"
	case strings.HasPrefix(name, "iso8859_"):
		iana = "ISO-8859-" + strings.TrimPrefix(name, "iso8859_")
	case cp && (strings.HasPrefix(digits, "125") && len(digits) == 4 || digits == "874"):
		iana = "windows-" + digits
	}
	return ianaindex.IANA.Encoding(iana)
}

// pythonAliases maps Python's codec aliases (encodings.aliases) that
// neither pythonCodecName's result nor it with '-' for '_' is an IANA name
// of, for the encodings lookupEncoding reads, onto Python's codec names.
var pythonAliases = map[string]string{
	"utf8": "utf_8", "u8": "utf_8", "utf": "utf_8", "utf8_ucs2": "utf_8", "utf8_ucs4": "utf_8", "cp65001": "utf_8",
	"latin": "latin_1", "iso8859": "latin_1",
	"latin7": "iso8859_13", "l7": "iso8859_13",
	"latin9": "iso8859_15", "l9": "iso8859_15",
	"macroman": "mac_roman",
}

// pythonCodecName returns label normalised as Python's codec registry
// does before it looks a name up: lowercased, each run of characters other
// than letters, digits and '.' between two of those one '_'.
func pythonCodecName(label string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(label) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(c)
			sep = false
		} else {
			sep = true
		}
	}
	return b.String()
}

func xmlName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
