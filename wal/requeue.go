package wal

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// RequeueReport says what RequeueCut did.
type RequeueReport struct {
	// SideFiles are the side files whose records were appended again,
	// each renamed to its name with ".requeued" added.
	SideFiles []string
	Requeued  int // records appended again
	Acked     int // records left out: the side file's own ack frames or checkpoint acknowledge them
	// Damage lists what could not be read, each a *CorruptionError naming
	// the side file and the offset in it: the records there are left out.
	Damage []error
}

// RequeueCut appends again, at the end of the log in dir, the records that
// Repair cut off: every record its side files ("repair-<time>.cut" in dir)
// hold that still reads whole and that they do not say is acknowledged.
// The records come back under new seqs, oldest side file first, in the
// order the log held them (segment by segment, by offset: a batch whose
// middle a cut took, Repair then cut at its start, comes back whole), with their bytes as they were
// appended (stored as opts say: compressed, encrypted). Which of them are
// acknowledged is known from the ack frames and the checkpoint the side
// file holds: a record whose acknowledgement was elsewhere is appended
// again all the same (delivered twice at worst, never lost), and so is a
// record a side file holds twice (the leftover of an interrupted merge).
// Damage in a side file is reported, not appended, and the reading goes
// on after it, as for Salvage, with work bounded over each side file as a
// whole (see sideWork), however many pieces it holds.
//
// Each side file's records are appended and synced before it is renamed
// to "<name>.requeued": a crash in between appends them again the next
// time, never loses them. A side file already renamed is left alone.
//
// It is meant for logs whose records carry their own identity, such as
// the journal of the robust producer (adapter/kafka), whose next producer
// sends the requeued records with their topic and _id; a log whose
// readers go by seq gets them back under new seqs. The log must open
// (Repair it first); RequeueCut takes its lock, and opts are the log's
// options. An encrypted record needs the log's key (WithEncryption):
// without it RequeueCut returns ErrKey before it appends anything. A
// directory without side files is left as it is.
func RequeueCut(dir string, opts ...Option) (rep RequeueReport, err error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	fsys := cfg.fs
	sides, err := cutSideFiles(fsys, dir)
	if err != nil || len(sides) == 0 {
		return rep, err
	}
	l, err := Open(dir, opts...)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	// The side files hold records of the log's past: a plain one among
	// them is not an altered one (PlainBelow is the log's rule for its
	// own records).
	var sl *segment.Sealer
	if l.sealer != nil {
		c := *l.sealer
		c.PlainBelow = 0
		sl = &c
	}
	// First, with nothing appended yet: every record must open.
	for _, side := range sides {
		for r, err := range sideRecords(fsys, side, sl) {
			if err != nil {
				if ce := (*CorruptionError)(nil); !errors.As(err, &ce) {
					return rep, err
				}
				continue
			}
			if r.Encrypted && r.Data == nil {
				return rep, fmt.Errorf("wal: %s at offset %d (seq %d) is encrypted: %w", side, r.Offset, r.Seq, ErrKey)
			}
		}
	}
	for _, side := range sides {
		for r, err := range sideRecords(fsys, side, sl) {
			switch {
			case err != nil:
				if ce := (*CorruptionError)(nil); !errors.As(err, &ce) {
					return rep, err
				}
				rep.Damage = append(rep.Damage, err)
				continue
			case r.Acked:
				rep.Acked++
				continue
			}
			if _, err := l.Append(r.Data); err != nil {
				return rep, fmt.Errorf("wal: requeue %s: %w", side, err)
			}
			rep.Requeued++
		}
		// Durable in the log before the side file says it is done.
		if err := l.Sync(); err != nil {
			return rep, fmt.Errorf("wal: requeue %s: %w", side, err)
		}
		if err := fsys.Rename(side, side+requeuedSuffix); err != nil {
			return rep, fmt.Errorf("wal: requeue: %w", err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			return rep, fmt.Errorf("wal: requeue: %w", err)
		}
		rep.SideFiles = append(rep.SideFiles, side)
	}
	return rep, nil
}

// requeuedSuffix marks a side file whose records RequeueCut appended again.
const requeuedSuffix = ".requeued"

// cutSideFiles lists the side files of Repair in dir that RequeueCut has
// not read yet, oldest first (their names hold the time of the repair).
func cutSideFiles(fsys vfs.FS, dir string) ([]string, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var sides []string
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, "repair-") && strings.HasSuffix(name, ".cut") && e.Type().IsRegular() {
			sides = append(sides, vfs.Join(dir, name))
		}
	}
	slices.Sort(sides)
	return sides, nil
}

// cutPiece is one piece of a side file: the bytes cut from the file name
// at offset off, which the side file holds from offset at on.
type cutPiece struct {
	name    string
	off, at int64
	b       []byte
}

// maxPieceLine bounds the line that starts a piece.
const maxPieceLine = 512

// pieceMark starts every piece line.
var pieceMark = []byte("walpub-repair ")

// cutPieces parses the side file whose bytes are b into its pieces
// (see Repair). A malformed piece line, or one naming more bytes than
// the file holds, is a *CorruptionError, and the parsing goes on at the
// next piece line, if any (the bytes up to it are not read): a damaged
// line costs its own piece, not every piece after it too.
func cutPieces(path string, b []byte) (pieces []cutPiece, damage []error) {
	for pos := int64(0); pos < int64(len(b)); {
		p, reason := cutPieceAt(b, pos)
		if reason == "" {
			pieces = append(pieces, p)
			pos = p.at + int64(len(p.b))
			continue
		}
		next := bytes.Index(b[pos+1:], pieceMark)
		skipped := "the rest of the side file is not read"
		if next >= 0 {
			skipped = fmt.Sprintf("skipped to the next piece line, at offset %d", pos+1+int64(next))
		}
		damage = append(damage, corrupt(path, pos, 0, FixByHand, "side file: %s; %s", reason, skipped))
		if next < 0 {
			break
		}
		pos += 1 + int64(next)
	}
	return pieces, damage
}

// cutPieceAt parses the piece whose line starts at pos in the side file
// b, or says why it cannot.
func cutPieceAt(b []byte, pos int64) (cutPiece, string) {
	line := b[pos:min(int64(len(b)), pos+maxPieceLine)]
	nl := bytes.IndexByte(line, '\n')
	if nl < 0 {
		return cutPiece{}, "no piece line"
	}
	f := strings.Fields(string(line[:nl]))
	if len(f) != 4 || f[0] != "walpub-repair" || filepath.Base(f[1]) != f[1] {
		return cutPiece{}, fmt.Sprintf("malformed piece line %q", line[:nl])
	}
	off, err1 := strconv.ParseInt(f[2], 10, 64)
	n, err2 := strconv.ParseInt(f[3], 10, 64)
	at := pos + int64(nl) + 1
	if err1 != nil || err2 != nil || off < 0 || n < 0 || n > int64(len(b))-at {
		return cutPiece{}, fmt.Sprintf("piece line %q names bytes the side file does not hold", line[:nl])
	}
	return cutPiece{name: f[1], off: off, at: at, b: b[at : at+n]}, ""
}

// sideRecords yields the records of the side file at path as Salvage
// yields a log's, each RecordInfo's Path and Offset and each damage's
// naming the side file and the offset in it. Acked is what the side
// file's own ack frames and checkpoint say.
func sideRecords(fsys vfs.FS, path string, sl *segment.Sealer) func(func(RecordInfo, error) bool) {
	return func(yield func(RecordInfo, error) bool) {
		more, err := withMapped(fsys, path, func(b []byte) bool {
			pieces, perrs := cutPieces(path, b)
			var acked []ackRange
			var ckpts []index.Checkpoint
			work := sideWork(len(b))
			for _, p := range pieces {
				if _, ok := segment.ParseName(p.name); ok {
					salvagePiece(path, p, &work, func(fr segment.Frame) bool {
						if fr.IsAck() {
							_ = index.DecodeAckPayload(fr.Payload, func(start, n uint64) {
								acked = append(acked, ackRange{start, n})
							})
						}
						return true
					}, func(*CorruptionError) bool { return true })
				} else if p.name == index.CheckpointName {
					if c, err := index.DecodeCheckpoint(p.b); err == nil {
						ckpts = append(ckpts, c)
					}
				}
			}
			acked = mergeRanges(acked)
			isAcked := func(seq uint64) bool {
				if _, ok := rangeAt(acked, seq); ok {
					return true
				}
				for _, c := range ckpts {
					if c.Acked(seq) {
						return true
					}
				}
				return false
			}
			// Each segment's pieces are read in the log's order, one
			// stream: a batch may begin in one piece and end in the next
			// (Repair cut it at damage in its middle, then at its start,
			// the log then ending in a batch without its commit frame).
			var segs []cutPiece
			for _, p := range pieces {
				if _, ok := segment.ParseName(p.name); ok {
					segs = append(segs, p)
				}
			}
			slices.SortStableFunc(segs, func(a, b cutPiece) int {
				ia, _ := segment.ParseName(a.name)
				ib, _ := segment.ParseName(b.name)
				return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a.off, b.off))
			})
			// pieceAt returns the piece that holds the side file's offset
			// at: a frame starts in its piece.
			all := segs
			pieceAt := func(at int64) cutPiece {
				for _, p := range all {
					if at >= p.at && at < p.at+max(int64(len(p.b)), 1) {
						return p
					}
				}
				return cutPiece{}
			}
			// Offsets in the side file, not in the segment they came from.
			inSide := func(r RecordInfo, err error) bool {
				if ce := (*CorruptionError)(nil); errors.As(err, &ce) {
					p := pieceAt(ce.Offset)
					ce.Reason = fmt.Sprintf("%s (cut from %s at offset %d)", ce.Reason, p.name, ce.Offset-p.at+p.off)
					ce.Path = path
					return yield(r, ce)
				}
				if err == nil {
					r.Path = path
				}
				return yield(r, err)
			}
			var buf []byte
			work = sideWork(len(b))
			for len(segs) > 0 {
				n := 1
				for n < len(segs) && segs[n].name == segs[0].name {
					n++
				}
				group := segs[:n]
				segs = segs[n:]
				if !salvageRecords(path, sl, &buf, isAcked, inSide, func(record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool {
					for _, p := range group {
						toSide := func(off int64) int64 { return p.at + off - p.off }
						rec := func(fr segment.Frame) bool {
							fr.Offset = toSide(fr.Offset)
							return record(fr)
						}
						dmg := func(ce *CorruptionError) bool {
							ce.Offset = toSide(ce.Offset)
							return damage(ce)
						}
						if p.off == 0 {
							if ce := headerDamage(path, p.b); ce != nil && !dmg(ce) {
								return false
							}
						}
						if !salvagePiece(path, p, &work, rec, dmg) {
							return false
						}
					}
					return true
				}) {
					return false
				}
			}
			for _, err := range perrs {
				if !yield(RecordInfo{}, err) {
					return false
				}
			}
			return true
		})
		if err != nil && more {
			yield(RecordInfo{}, err)
		}
	}
}

// sideWork is the bound on the bytes hashed beyond a side file's own in
// one reading of it (of size bytes), over all its pieces: the search for
// a frame after damage, and the zeros after a piece's last frame (see
// frameWithZeros). A few times its size, as for a segment (NewResync),
// and room for the zeros of a few of the largest frames cut short: a
// side file crafted of many small pieces, each claiming a frame that runs
// far past it, is read in time bounded by its size.
func sideWork(size int) int64 { return 4*int64(size) + 2*maxZeroTailFrame + 1<<20 }

// salvagePiece calls salvageWindow on the bytes of piece p: a whole
// segment file (from offset 0) or what a cut moved from its offset on.
func salvagePiece(path string, p cutPiece, work *int64, record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool {
	if p.off%segment.Align != 0 || p.off > 0 && p.off < segment.HeaderSize {
		return damage(corrupt(path, p.off, 0, FixByHand, "side file: a piece of %s at offset %d, not where a frame can start", p.name, p.off))
	}
	return salvageWindow(path, p.b, p.off, work, record, damage)
}
