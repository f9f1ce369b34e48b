package hop

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/fsutil"
	"github.com/walpub/walpub/wal"
)

// ImportedFile is the file in a walpub journal directory where Import
// lists the "_id" of every message it appended, one a line in hex, so that
// importing the same hop journal again appends nothing twice.
const ImportedFile = "hop-imported"

// importBatch is how many records Import appends in one wal.AppendBatch.
const importBatch = 1000

// ErrNoTopic is returned by Import when a version 1 hop record (which
// stores no topic) is pending and ImportOptions.Topic is "".
var ErrNoTopic = errors.New("hop: version 1 journal records name no topic")

// ImportOptions configure Import.
type ImportOptions struct {
	// Topic is the topic of messages whose record names none (version 1
	// records, which hop sent to its URL's topic). Records that name their
	// topic keep it.
	Topic string
	// Salvage imports what is readable from a damaged hop journal (see
	// ReadJournal) instead of refusing it.
	Salvage bool
	// WAL are options for opening the walpub journal (such as
	// wal.WithEncryption for an encrypted one).
	WAL []wal.Option
}

// ImportReport says what Import did.
type ImportReport struct {
	Journal  *Journal // what was read from the hop journal
	Imported int      // messages appended to the walpub journal
	Skipped  int      // pending messages an earlier import had appended
	FirstSeq uint64   // the walpub journal seqs of the appended records
	LastSeq  uint64
}

// Import appends every message of the hop-client journal hopJournal that
// no sent record confirms to the walpub journal in dir (created if
// missing), in hop's sending order, as the robust producer journals a
// record: topic, key, value and headers, the original "_id" included (a
// message without one gets an "_id" derived from its contents, the same at
// every import). A producer opened on dir (kafka.NewProducer, walpub
// --journal dir) then sends them. Messages an earlier Import appended, and
// messages whose "_id" a record pending in dir already has, are skipped.
//
// The hop journal is only read. dir must not be in use: Import takes the
// journal's lock (wal.ErrLocked otherwise). The records are synced to disk
// before their ids are added to ImportedFile, so a crash in between
// can make a later import append them again (a duplicate, not a loss).
func Import(hopJournal, dir string, o ImportOptions) (ImportReport, error) {
	j, err := ReadJournal(hopJournal, o.Salvage)
	if err != nil {
		return ImportReport{}, err
	}
	rep := ImportReport{Journal: j}
	for _, m := range j.Pending {
		if m.Topic == "" && o.Topic == "" {
			return rep, fmt.Errorf("%w: message %d at offset %d: give the topic hop sent them to", ErrNoTopic, m.Seq, m.Offset)
		}
	}
	l, err := wal.Open(dir, o.WAL...)
	if err != nil {
		return rep, fmt.Errorf("hop: opening the walpub journal: %w", err)
	}
	defer l.Close()
	seen, valid, err := readImported(filepath.Join(dir, ImportedFile))
	if err != nil {
		return rep, err
	}
	for rec, err := range l.Pending() {
		if err != nil {
			return rep, fmt.Errorf("hop: reading the walpub journal: %w", err)
		}
		if r, err := kafka.DecodeRecord(rec.Data); err == nil {
			if id := lastHeader(r.Headers, HeaderID); id != nil {
				seen[string(id)] = true
			}
		}
	}

	now := time.Now()
	var batch [][]byte
	var ids [][]byte
	// record syncs the journal and adds ids to ImportedFile.
	record := func(ids [][]byte) error {
		if err := l.Sync(); err != nil {
			return fmt.Errorf("hop: syncing the walpub journal: %w", err)
		}
		return appendImported(dir, valid, ids)
	}
	flushed := 0 // ids[:flushed] are in the walpub journal
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		first, err := l.AppendBatch(batch)
		if err != nil {
			if first != 0 {
				flushed = len(ids) // appended, its sync failed
			}
			err = fmt.Errorf("hop: appending to the walpub journal: %w", err)
			if flushed > 0 {
				// The batches appended before stay: their ids too, or
				// the next import would append them again.
				err = errors.Join(err, record(ids[:flushed]))
			}
			return err
		}
		flushed = len(ids)
		if rep.FirstSeq == 0 {
			rep.FirstSeq = first
		}
		rep.LastSeq = first + uint64(len(batch)) - 1
		rep.Imported += len(batch)
		batch = batch[:0]
		return nil
	}
	for _, m := range j.Pending {
		rec := &kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: now}
		if rec.Topic == "" {
			rec.Topic = o.Topic
		}
		id := lastHeader(m.Headers, HeaderID)
		if id == nil {
			id = derivedID(m)
			rec.Headers = append(append([]kgo.RecordHeader(nil), m.Headers...), kgo.RecordHeader{Key: HeaderID, Value: id})
		}
		if seen[string(id)] {
			rep.Skipped++
			continue
		}
		seen[string(id)] = true
		batch = append(batch, kafka.EncodeRecord(rec))
		ids = append(ids, id)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	if len(ids) == 0 {
		return rep, nil
	}
	if err := record(ids); err != nil {
		return rep, err
	}
	return rep, l.Close()
}

// lastHeader returns the value of the last header named key, or nil. A
// message's own "_id" is its last: hop's pack appends it after the
// headers it is given, which may hold another message's (a relay
// republishing what it consumed).
func lastHeader(hs []kgo.RecordHeader, key string) []byte {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return hs[i].Value
		}
	}
	return nil
}

// derivedID is the "_id" of a message stored without one: an RFC 9562
// version 8 UUID from the SHA-256 of its sequence number, topic, key, value
// and headers, so that every import of the message gives it the same id.
func derivedID(m JournalMessage) []byte {
	h := sha256.New()
	field := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	h.Write([]byte("hop-journal-message\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, m.Seq))
	field([]byte(m.Topic))
	field(m.Key)
	field(m.Value)
	for _, hd := range m.Headers {
		field([]byte(hd.Key))
		field(hd.Value)
	}
	id := h.Sum(nil)[:16]
	id[6] = id[6]&0x0f | 0x80
	id[8] = id[8]&0x3f | 0x80
	return id
}

// readImported reads ImportedFile; a missing file is an empty set. It
// returns the ids and the length of the file up to its last newline: a
// last line without one (a write cut short) is ignored, and cut off by the
// next appendImported.
func readImported(path string) (map[string]bool, int64, error) {
	seen := map[string]bool{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return seen, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("hop: %w", err)
	}
	valid := bytes.LastIndexByte(b, '\n') + 1
	lines := bytes.Split(b[:valid], []byte("\n"))
	for n, line := range lines[:len(lines)-1] { // the last is empty: after the last newline
		id, derr := hex.DecodeString(string(line))
		if derr != nil || len(id) == 0 {
			return nil, 0, fmt.Errorf("hop: %s line %d is not a hex id: %q", path, n+1, line)
		}
		seen[string(id)] = true
	}
	return seen, int64(valid), nil
}

// appendImported writes ids to ImportedFile from offset valid on and
// syncs it (and dir, when the file is new).
func appendImported(dir string, valid int64, ids [][]byte) error {
	path := filepath.Join(dir, ImportedFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("hop: %w", err)
	}
	var b []byte
	for _, id := range ids {
		b = hex.AppendEncode(b, id)
		b = append(b, '\n')
	}
	err = f.Truncate(valid)
	if err == nil {
		_, err = f.WriteAt(b, valid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && statErr != nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("hop: recording the imported ids in %s: %w", path, err)
	}
	return nil
}
