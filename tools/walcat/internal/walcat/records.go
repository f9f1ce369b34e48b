package walcat

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
)

// Payload formats for --format.
const (
	formatAuto  = "auto"  // a robust-producer journal record when it decodes as one, raw bytes otherwise
	formatRaw   = "raw"   // raw bytes
	formatKafka = "kafka" // a robust-producer journal record; an error otherwise
)

// printOpts are the output flags shared by dump and follow.
type printOpts struct {
	json    bool
	raw     bool
	format  string
	preview int
	delim   string
	keyFile string
	key     []byte // read from keyFile by printer
}

func (o *printOpts) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print one JSON object per record, one per line")
	fs.BoolVar(&o.raw, "raw", false, "print the payloads alone, each followed by --delim (for journal records: the Kafka value)")
	fs.StringVar(&o.format, "format", formatAuto, "payload `format`: auto (journal records of the robust producer are decoded when they parse), raw, or kafka")
	fs.IntVar(&o.preview, "preview", 64, "text output: show at most `N` payload bytes (0: all)")
	fs.StringVar(&o.delim, "delim", `\n`, "with --raw: the `separator` written after each payload, Go escapes allowed (\"\" for none)")
	fs.StringVar(&o.keyFile, "key-file", "", "read an encrypted log with the key in `FILE`: "+cliutil.KeyFileHelp)
}

// openView opens the view of dir, given the key if the log is encrypted
// and a key file was given.
func (o *printOpts) openView(dir string) (*wal.View, error) {
	return o.reopenView(nil, dir)
}

// reopenView is openView reading only what changed since prev, the view
// before (wal.View.Reopen), if not nil.
func (o *printOpts) reopenView(prev *wal.View, dir string) (*wal.View, error) {
	var v *wal.View
	var err error
	if prev != nil {
		v, err = prev.Reopen()
	} else {
		v, err = wal.OpenView(dir)
	}
	if err != nil {
		return nil, err
	}
	// Encrypted, not Info: Info reads every record, and a look of
	// follow would read the whole log again.
	if o.key != nil && v.Encrypted() {
		if err := v.SetKey(o.key); err != nil {
			v.Close()
			return nil, fmt.Errorf("the key in %s is not the key of %s: %w", o.keyFile, dir, err)
		}
	}
	return v, nil
}

// errNoKey: a record is encrypted and no key file was given.
type errNoKey struct{ seq uint64 }

func (e errNoKey) Error() string {
	return fmt.Sprintf("record %d is encrypted: give the log's key with --key-file FILE", e.seq)
}

// printer validates the flags and returns the printer they describe.
func (o *printOpts) printer(w *bufio.Writer) (*printer, error) {
	switch o.format {
	case formatAuto, formatRaw, formatKafka:
	default:
		return nil, fmt.Errorf("--format %q: want auto, raw or kafka", o.format)
	}
	if o.json && o.raw {
		return nil, fmt.Errorf("--json and --raw exclude each other")
	}
	if o.preview < 0 {
		return nil, fmt.Errorf("--preview %d: want 0 or more", o.preview)
	}
	delim, err := strconv.Unquote(`"` + strings.ReplaceAll(o.delim, `"`, `\"`) + `"`)
	if err != nil {
		delim = o.delim // not an escaped form: take it as it is
	}
	if o.keyFile != "" {
		if o.key, err = cliutil.ReadKeyFile(o.keyFile); err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
	}
	return &printer{w: w, opts: *o, delim: delim}, nil
}

// printer writes records in the chosen form.
type printer struct {
	w     *bufio.Writer
	opts  printOpts
	delim string
	// badKafka counts records that --format kafka could not decode.
	badKafka int
}

// decoded is a journal record of the robust producer.
type decoded struct {
	rec    *kgo.Record
	reason string // dead-letter entries: why the record was not delivered
	err    error  // with --format kafka: why it did not decode
}

func (p *printer) decode(data []byte) *decoded {
	switch p.opts.format {
	case formatRaw:
		return nil
	case formatAuto:
		if !kafka.IsRecord(data) {
			return nil
		}
		r, reason, err := kafka.DecodeDeadLetter(data)
		if err != nil {
			return nil
		}
		return &decoded{rec: r, reason: reason}
	default:
		r, reason, err := kafka.DecodeDeadLetter(data)
		if err != nil {
			p.badKafka++
			return &decoded{err: err}
		}
		return &decoded{rec: r, reason: reason}
	}
}

// print writes one record; an encrypted one without its data (no key) is
// errNoKey.
func (p *printer) print(r wal.RecordInfo) error {
	if r.Encrypted && r.Data == nil {
		return errNoKey{r.Seq}
	}
	d := p.decode(r.Data)
	switch {
	case p.opts.raw:
		if d != nil && d.rec != nil {
			p.w.Write(d.rec.Value)
		} else {
			p.w.Write(r.Data)
		}
		p.w.WriteString(p.delim)
	case p.opts.json:
		p.printJSON(r, d)
	default:
		p.printText(r, d)
	}
	// Keep pace with the output, so that follow shows records as they come
	// and a reader that quits early stops us.
	if p.w.Buffered() > 32<<10 {
		return p.w.Flush()
	}
	return nil
}

func (p *printer) printText(r wal.RecordInfo, d *decoded) {
	w := p.w
	state := "pending"
	if r.Acked {
		state = "acked"
	}
	fmt.Fprintf(w, "seq=%d %s seg=%s off=%d size=%d stored=%d", r.Seq, state, filepath.Base(r.Path), r.Offset, r.Size, r.StoredSize)
	if r.Compressed {
		w.WriteString(" zstd")
	}
	if r.Encrypted {
		w.WriteString(" encrypted")
	}
	if r.Batch {
		w.WriteString(" batch")
	}
	switch {
	case d == nil:
		w.WriteString(" data=")
		w.WriteString(preview(r.Data, p.opts.preview))
	case d.err != nil:
		fmt.Fprintf(w, " kafka-error=%q data=%s", d.err.Error(), preview(r.Data, p.opts.preview))
	default:
		k := d.rec
		w.WriteString(" topic=")
		w.WriteString(topicText(k.Topic))
		if k.Partition != 0 {
			fmt.Fprintf(w, " partition=%d", k.Partition)
		}
		if !k.Timestamp.IsZero() {
			fmt.Fprintf(w, " time=%s", k.Timestamp.UTC().Format(timeFormat))
		}
		w.WriteString(" key=")
		w.WriteString(nullablePreview(k.Key, p.opts.preview))
		if len(k.Headers) > 0 {
			w.WriteString(" headers=[")
			for i, h := range k.Headers {
				if i > 0 {
					w.WriteString(" ")
				}
				fmt.Fprintf(w, "%s=%s", strconv.Quote(h.Key), headerPreview(h, p.opts.preview))
			}
			w.WriteString("]")
		}
		w.WriteString(" value=")
		w.WriteString(nullablePreview(k.Value, p.opts.preview))
		if d.reason != "" {
			fmt.Fprintf(w, " dead-letter=%q", d.reason)
		}
	}
	w.WriteString("\n")
}

// topicText is topic as the text dump shows it: bare when it is a legal
// Kafka topic name (kafka.CheckTopic: ASCII letters, digits, '.', '_',
// '-'), quoted otherwise (empty, or a damaged or crafted record's spaces,
// quotes, newlines or control characters), so that no topic passes for
// another field or record.
func topicText(topic string) string {
	if kafka.CheckTopic(topic) == nil {
		return topic
	}
	return strconv.Quote(topic)
}

// timeFormat is RFC 3339 with milliseconds, Kafka's precision.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// preview quotes at most n bytes of b (all with n 0) and says how many
// were left out.
func preview(b []byte, n int) string {
	if n == 0 || len(b) <= n {
		return strconv.Quote(string(b))
	}
	cut := n
	// Do not split a UTF-8 sequence.
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
		cut--
	}
	if cut == 0 {
		cut = n
	}
	return fmt.Sprintf("%s...(+%d bytes)", strconv.Quote(string(b[:cut])), len(b)-cut)
}

func nullablePreview(b []byte, n int) string {
	if b == nil {
		return "null"
	}
	return preview(b, n)
}

// headerPreview shows the producer's 16-byte "_id" header as a UUID.
func headerPreview(h kgo.RecordHeader, n int) string {
	if h.Key == "_id" && len(h.Value) == 16 {
		return formatUUID(h.Value)
	}
	return nullablePreview(h.Value, n)
}

func formatUUID(b []byte) string {
	s := hex.EncodeToString(b)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// jsonObject builds a JSON object with its fields in the order they are
// added.
type jsonObject struct{ b []byte }

func (o *jsonObject) key(name string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = strconv.AppendQuote(o.b, name)
	o.b = append(o.b, ':')
}

// field adds a field whose value encoding/json marshals.
func (o *jsonObject) field(name string, v any) {
	o.key(name)
	b, _ := json.Marshal(v) // plain types only: cannot fail
	o.b = append(o.b, b...)
}

// raw adds a field whose value is JSON already.
func (o *jsonObject) raw(name string, v []byte) {
	o.key(name)
	o.b = append(o.b, v...)
}

// bytes adds a byte field: "name": a string when b is valid UTF-8, null
// when b is nil; "name_base64": base64 otherwise, so that every byte
// survives. Exactly one of the two is present.
func (o *jsonObject) bytes(name string, b []byte) {
	switch {
	case b == nil:
		o.field(name, nil)
	case utf8.Valid(b):
		o.field(name, string(b))
	default:
		o.field(name+"_base64", base64.StdEncoding.EncodeToString(b))
	}
}

func (o *jsonObject) done() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

func (p *printer) printJSON(r wal.RecordInfo, d *decoded) {
	var o jsonObject
	o.field("seq", r.Seq)
	o.field("acked", r.Acked)
	o.field("segment", filepath.Base(r.Path))
	o.field("offset", r.Offset)
	o.field("size", r.Size)
	o.field("stored", r.StoredSize)
	o.field("compressed", r.Compressed)
	o.field("batch", r.Batch)
	if r.Encrypted {
		o.field("encrypted", true)
	}
	if d == nil || d.err != nil {
		data := r.Data
		if data == nil {
			data = []byte{}
		}
		o.bytes("data", data)
		if d != nil {
			o.field("kafka_error", d.err.Error())
		}
	} else {
		o.raw("kafka", kafkaJSON(d))
	}
	p.w.Write(o.done())
	p.w.WriteByte('\n')
}

// kafkaJSON is a journal record as a JSON object: topic, id (the 16-byte
// _id header as a UUID, when there is one), partition, timestamp (null
// when unset), key, headers, value, and dead_letter_reason for dead-letter
// entries.
func kafkaJSON(d *decoded) []byte {
	k := d.rec
	var o jsonObject
	o.field("topic", k.Topic)
	for _, h := range k.Headers {
		if h.Key == "_id" && len(h.Value) == 16 {
			o.field("id", formatUUID(h.Value))
			break
		}
	}
	o.field("partition", k.Partition)
	if k.Timestamp.IsZero() {
		o.field("timestamp", nil)
	} else {
		o.field("timestamp", k.Timestamp.UTC().Format(timeFormat))
	}
	o.bytes("key", k.Key)
	hs := []byte{'['}
	for i, h := range k.Headers {
		if i > 0 {
			hs = append(hs, ',')
		}
		var ho jsonObject
		ho.field("key", h.Key)
		ho.bytes("value", h.Value)
		hs = append(hs, ho.done()...)
	}
	o.raw("headers", append(hs, ']'))
	o.bytes("value", k.Value)
	if d.reason != "" {
		o.field("dead_letter_reason", d.reason)
	}
	return o.done()
}
