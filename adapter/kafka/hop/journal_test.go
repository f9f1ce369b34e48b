package hop

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// hopPending is a message of testdata/NAME.pending.json: what hop-client
// itself reloads from NAME.journal as still to send (make_journals.py).
type hopPending struct {
	Seq     uint64      `json:"seq"`
	Topic   *string     `json:"topic"`
	Key     *string     `json:"key"`
	Value   string      `json:"value"`
	Headers [][2]string `json:"headers"`
}

func loadPending(t *testing.T, name string) []hopPending {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".pending.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []hopPending
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// describe renders a message the way the .pending.json files hold it.
func describe(m JournalMessage) string {
	key := "null"
	if m.Key != nil {
		key = base64.StdEncoding.EncodeToString(m.Key)
	}
	s := fmt.Sprintf("seq=%d topic=%q key=%s value=%s", m.Seq, m.Topic, key, base64.StdEncoding.EncodeToString(m.Value))
	for _, h := range m.Headers {
		s += fmt.Sprintf(" %s=%s", h.Key, base64.StdEncoding.EncodeToString(h.Value))
	}
	return s
}

func describeHop(p hopPending) string {
	topic, key := "", "null"
	if p.Topic != nil {
		topic = *p.Topic
	}
	if p.Key != nil {
		key = *p.Key
	}
	s := fmt.Sprintf("seq=%d topic=%q key=%s value=%s", p.Seq, topic, key, p.Value)
	for _, h := range p.Headers {
		s += fmt.Sprintf(" %s=%s", h[0], h[1])
	}
	return s
}

// TestReadJournalMatchesHop: ReadJournal finds in journals written by
// hop-client exactly the messages hop-client itself reloads from them.
func TestReadJournalMatchesHop(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		records, sent, versions int
	}{
		{"v2", 8, 3, 2},
		{"v1", 4, 1, 1},
	} {
		j, err := ReadJournal(filepath.Join("testdata", tc.name+".journal"), false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got, want []string
		for _, m := range j.Pending {
			got = append(got, describe(m))
			if m.Version != tc.versions {
				t.Errorf("%s: seq %d has version %d", tc.name, m.Seq, m.Version)
			}
		}
		for _, p := range loadPending(t, tc.name) {
			want = append(want, describeHop(p))
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: pending\n%s\nhop reloads\n%s", tc.name, got, want)
		}
		if j.Records != tc.records || j.Sent != tc.sent || j.TornBytes != 0 || len(j.Damage) != 0 {
			t.Errorf("%s: %d records, %d sent, %d torn bytes, damage %v", tc.name, j.Records, j.Sent, j.TornBytes, j.Damage)
		}
	}
}

// recordStarts returns the offset of every record of a healthy journal.
func recordStarts(t *testing.T, b []byte) []int {
	t.Helper()
	var starts []int
	for off := 0; off < len(b); {
		_, next, torn, damage := parseRecord(b, off)
		if torn || damage != "" {
			t.Fatalf("record at %d: torn %v, %s", off, torn, damage)
		}
		starts = append(starts, off)
		off = next
	}
	return starts
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "publisher.journal")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadJournalTornTail: a journal cut anywhere (a process killed while
// writing a record) reads without error; the cut record is counted as torn
// and every message whose record is whole is there.
func TestReadJournalTornTail(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "v2.journal"))
	if err != nil {
		t.Fatal(err)
	}
	starts := recordStarts(t, full)
	for cut := range len(full) {
		j, err := ReadJournal(writeTemp(t, full[:cut]), false)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		last := 0
		for _, s := range starts {
			if s <= cut {
				last = s
			}
		}
		if j.TornBytes != int64(cut-last) {
			t.Fatalf("cut at %d: %d torn bytes, want %d", cut, j.TornBytes, cut-last)
		}
		for _, m := range j.Pending {
			if m.Offset >= int64(last) {
				t.Fatalf("cut at %d: message at %d is past the last whole record", cut, m.Offset)
			}
		}
	}
}

// TestReadJournalDamage: every flipped byte of a hop journal is reported
// with the offset of its record; salvage reads every other message.
func TestReadJournalDamage(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "v2.journal"))
	if err != nil {
		t.Fatal(err)
	}
	starts := recordStarts(t, full)
	healthy, err := ReadJournal(filepath.Join("testdata", "v2.journal"), false)
	if err != nil {
		t.Fatal(err)
	}
	// Every message the file holds, pending or confirmed, by seq.
	all := map[uint64]string{}
	var msgRecords = map[int]uint64{} // record start -> seq of its message
	for _, s := range starts {
		rec, _, _, _ := parseRecord(full, s)
		if rec.typ != hopTypeSent {
			rec.msg.Offset = int64(s)
			all[rec.msg.Seq] = describe(rec.msg)
			msgRecords[s] = rec.msg.Seq
		}
	}
	detected := 0
	for i := range full {
		b := bytes.Clone(full)
		b[i] ^= 0x40
		p := writeTemp(t, b)
		recStart := 0
		for _, s := range starts {
			if s <= i {
				recStart = s
			}
		}
		_, err := ReadJournal(p, false)
		var je *JournalError
		if !errors.As(err, &je) || !errors.Is(err, ErrJournalCorrupt) {
			t.Fatalf("byte %d flipped: error %v, want a *JournalError", i, err)
		}
		if je.Offset != int64(recStart) || je.Path != p {
			t.Fatalf("byte %d flipped: %v, want the record at offset %d", i, err, recStart)
		}
		detected++

		j, err := ReadJournal(p, true)
		if err != nil || len(j.Damage) == 0 || j.Damage[0].Offset != int64(recStart) {
			t.Fatalf("byte %d flipped, salvage: %v, damage %v", i, err, j.Damage)
		}
		got := map[uint64]bool{}
		for _, m := range j.Pending {
			if all[m.Seq] != describe(m) {
				t.Fatalf("byte %d flipped, salvage: message %s is not one the journal holds", i, describe(m))
			}
			got[m.Seq] = true
		}
		lost, isMsg := msgRecords[recStart]
		for _, m := range healthy.Pending {
			if !got[m.Seq] && (!isMsg || m.Seq != lost) {
				t.Fatalf("byte %d flipped, salvage lost message %d, which was not in the damaged record", i, m.Seq)
			}
		}
	}
	t.Logf("%d of %d flipped bytes detected; salvage kept every message outside the damaged record", detected, len(full))
}

// TestReadJournalErrors covers the damage a checksum does not catch.
func TestReadJournalErrors(t *testing.T) {
	sent := func(seq uint64) []byte { return hopRecordBytes(hopTypeSent, be64(seq)) }
	msg := func(seq uint64, v string) []byte {
		body := slices.Concat(be64(seq), be64(1), []byte("t"), be64(uint64(len(v))), []byte(v), be64(0), be64(0))
		return hopRecordBytes(hopTypeMessageV2, body)
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		offset int64
		reason string
	}{
		{"sent unknown", slices.Concat(msg(0, "a"), sent(5)), 66, "sent record for sequence number 5, which no pending message has"},
		{"duplicate seq", slices.Concat(msg(3, "a"), msg(3, "b")), 66, "message with sequence number 3, which a pending message already has"},
		{"unknown type", hopRecordBytes(7, be64(1)), 0, "unknown record type 7"},
		{"short body", hopRecordBytes(hopTypeSent, []byte{1, 2}), 0, "sequence number overruns the record body"},
		{"long body", hopRecordBytes(hopTypeSent, make([]byte, 9)), 0, "body of 9 bytes, its fields end at 8"},
		{"value overruns", hopRecordBytes(hopTypeMessageV1, slices.Concat(be64(0), be64(99), be64(0))), 0, "value of 99 bytes overruns the 8 bytes left in the record body"},
		{"headers overrun", hopRecordBytes(hopTypeMessageV1, slices.Concat(be64(0), be64(0), be64(1<<60))), 0, "1152921504606846976 headers cannot fit in the 0 bytes left in the record body"},
		{"topic not UTF-8", hopRecordBytes(hopTypeMessageV2, slices.Concat(be64(0), be64(1), []byte{0xff}, be64(0), be64(0), be64(0))), 0, "topic is not UTF-8"},
	} {
		_, err := ReadJournal(writeTemp(t, tc.b), false)
		var je *JournalError
		if !errors.As(err, &je) || je.Offset != tc.offset || je.Reason != tc.reason {
			t.Errorf("%s: %v, want offset %d: %s", tc.name, err, tc.offset, tc.reason)
		}
	}
	if _, err := ReadJournal(filepath.Join(t.TempDir(), "missing"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing journal: %v", err)
	}
	j, err := ReadJournal(writeTemp(t, nil), false)
	if err != nil || len(j.Pending) != 0 || j.Records != 0 {
		t.Errorf("empty journal (hop truncates it when all is sent): %+v, %v", j, err)
	}
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// hopRecordBytes frames body as a hop journal record of type typ.
func hopRecordBytes(typ uint64, body []byte) []byte {
	h := slices.Concat(be64(typ), be64(uint64(len(body))), binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)))
	h = binary.BigEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
	return append(h, body...)
}
