package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// RepairReport says what Repair cut.
type RepairReport struct {
	Path     string // the file that was cut (the first, if several were)
	Offset   int64  // where it was cut
	Moved    int64  // bytes moved aside
	SideFile string // where they went
}

// Repair truncates the log in dir at its first damaged frame (as Verify
// finds it: a record that does not decode is damage too) so that it
// opens again, moving every byte it cuts off into a side file in dir; it
// never deletes data. Everything after the damage goes too: the rest of
// the damaged segment and every later segment; damage within a batch of
// AppendBatch is cut at the batch's first frame, the batch going into the
// side file whole. Damaged or inconsistent
// metadata (superblock, checkpoint) is moved aside whole; acknowledgements
// only it recorded are then lost, so some acknowledged records may be
// pending again (at-least-once, never a loss). Segment files after a
// hole, which Open would remove as written after a power cut, are moved
// aside too (see loadChecked). A checkpoint that is
// missing (or was moved aside) after compaction reclaimed segments is
// written anew from the segments' own ack frames; the report then names
// it, with nothing moved.
//
// The side file, "repair-<time>.cut", is a sequence of pieces, each a
// line "walpub-repair <file> <offset> <length>\n" followed by that many
// bytes cut from <file> at <offset> (a stretch of zeros among them may be
// a hole in the side file, which reads the same). Repair holds at most
// 1 MiB of a file in memory at once. A log with nothing to repair is left
// as it is, with an empty report. Repair takes the directory's lock.
func Repair(dir string) (RepairReport, error) {
	return repair(vfs.OS, dir, nil)
}

// RepairWithKey is Repair for an encrypted log, given its key (see
// WithEncryption): it also authenticates every encrypted record, so that
// a record that does not authenticate (altered with its checksum fixed
// up, or encrypted under another key), which Repair cannot tell from a
// sound one, is damage it cuts the log at like any other. A key that is not the log's,
// or a key for a log that is not encrypted, is ErrKey; it is checked once
// the log loads, so damage that keeps it from loading, which needs no
// key, is mended first as Repair would.
func RepairWithKey(dir string, key []byte) (RepairReport, error) {
	return repair(vfs.OS, dir, key)
}

// loadChecked loads the log in dir as Repair sees it: every record must
// also decode, as for Verify, and with a key every encrypted one
// authenticate. Segment files after a hole, which Open would remove as
// written after what a power cut took, are damage to cut there: Repair
// moves them into its side file. They may hold records once durable: a
// Repair interrupted after it zeroed a segment's tail at the damage and
// removed a later segment that the superblock names leaves the segments
// between after a stretch of zeros; the next Repair moves that
// superblock aside, and with it the mark that told the zeros from a
// power cut's.
func loadChecked(fsys vfs.FS, dir string, key []byte) error {
	st, err := load(fsys, dir, loadRead)
	if err != nil {
		return err
	}
	v := &View{dir: dir, st: st}
	defer v.Close()
	if key != nil {
		if err := v.SetKey(key); err != nil {
			return err
		}
	}
	if err := v.readAll(); err != nil {
		return err
	}
	if len(st.dropped) > 0 {
		return corrupt(st.dropped[0], 0, 0, FixCut, "segment after a hole, which Open would remove as written after a power cut")
	}
	return nil
}

func repair(fsys vfs.FS, dir string, key []byte) (rep RepairReport, err error) {
	lock, err := lockDir(fsys, dir, 0o600)
	if err != nil {
		return rep, err
	}
	defer func() { _ = unlockDir(lock) }()
	var side vfs.File
	defer func() {
		if side != nil {
			if serr := side.Sync(); err == nil {
				err = serr
			}
			side.Close()
			if err == nil {
				err = fsys.SyncDir(dir)
			}
		}
	}()
	sideOff := int64(0)
	// movePiece appends a piece to the side file: the n bytes of the file
	// at path from off on, read from src a chunk at a time (the memory
	// Repair uses is bounded, whatever it moves). A chunk of zeros is
	// left a hole in the side file, which reads as the same zeros.
	movePiece := func(path string, src io.ReaderAt, off, n int64) error {
		if side == nil {
			rep.SideFile = vfs.Join(dir, fmt.Sprintf("repair-%s.cut", time.Now().UTC().Format("20060102T150405.000000000Z")))
			if side, err = fsys.OpenFile(rep.SideFile, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
				side = nil
				return fmt.Errorf("wal: repair: %w", err)
			}
			// The side file's name is durable before any byte leaves
			// the log: a power cut could otherwise keep the cut (a
			// synced zeroing, a removal) and take the side file.
			if err := fsys.SyncDir(dir); err != nil {
				return fmt.Errorf("wal: repair: %w", err)
			}
		}
		hdr := fmt.Sprintf("walpub-repair %s %d %d\n", filepath.Base(path), off, n)
		if _, err := side.WriteAt([]byte(hdr), sideOff); err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
		sideOff += int64(len(hdr))
		buf := make([]byte, min(n, repairChunk))
		for done := int64(0); done < n; {
			b := buf[:min(n-done, int64(len(buf)))]
			if k, err := src.ReadAt(b, off+done); k != len(b) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("wal: repair: read %s at offset %d: %w", path, off+done, err)
			}
			last := done+int64(len(b)) == n
			switch {
			case !segment.AllZero(b):
				_, err = side.WriteAt(b, sideOff+done)
			case last:
				// The side file must reach the piece's end.
				_, err = side.WriteAt(b[len(b)-1:], sideOff+n-1)
			}
			if err != nil {
				return fmt.Errorf("wal: repair: %w", err)
			}
			done += int64(len(b))
		}
		sideOff += n
		// The bytes are safe in the side file before they leave the log.
		if err := side.Sync(); err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
		rep.Moved += n
		if rep.Path == "" {
			rep.Path, rep.Offset = path, off
		}
		return nil
	}
	// moveFile moves a whole file into the side file and removes it.
	moveFile := func(path string) error {
		f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
		fi, err := f.Stat()
		if err == nil {
			err = movePiece(path, f, 0, fi.Size())
		}
		f.Close()
		if err != nil {
			return err
		}
		return fsys.Remove(path)
	}

	// last is the damage the last round mended, to tell a fix that
	// changed nothing.
	last := ""
	// mend applies the fix ce names.
	var mend func(ce *CorruptionError) error
	mend = func(ce *CorruptionError) error {
		switch ce.fix {
		case FixMoveAside:
			return moveFile(ce.aside)
		case FixResize:
			if err := resizeSegment(fsys, ce.Path, movePiece); err != nil {
				return err
			}
			if rep.Path == "" {
				rep.Path, rep.Offset = ce.Path, ce.Offset
			}
		case FixCut:
			return cutAt(fsys, dir, ce.Path, ce.cutOffset(), movePiece, moveFile)
		case FixCheckpoint:
			err := rebuildCheckpoint(fsys, dir, lock)
			if other := (*CorruptionError)(nil); errors.As(err, &other) && other.fix != FixCheckpoint {
				// The rebuild met other damage: mend that; the next
				// round asks for the checkpoint again, which is progress.
				last = ""
				return mend(other)
			}
			if err != nil {
				return err
			}
			if rep.Path == "" {
				rep.Path, rep.Offset = ce.Path, 0
			}
		}
		return nil
	}
	for range 1000 {
		lerr := loadChecked(fsys, dir, key)
		if lerr == nil {
			return rep, nil
		}
		var ce *CorruptionError
		if !errors.As(lerr, &ce) {
			return rep, lerr
		}
		// The same damage again right after its fix: the fix changed
		// nothing, and would change nothing the next time either.
		if ce.Error() == last {
			return rep, fmt.Errorf("wal: repair: the fix changed nothing: %w", lerr)
		}
		last = ce.Error()
		if ce.fix == FixByHand {
			return rep, fmt.Errorf("wal: repair: move it out of the log's directory, or put the file itself there: %w", lerr)
		}
		if err := mend(ce); err != nil {
			return rep, err
		}
	}
	return rep, fmt.Errorf("wal: repair: %s still does not open after many repairs", dir)
}

// rebuildCheckpoint writes a new checkpoint for a log that lost its own:
// it opens the log accepting the loss, with the acknowledgements that the
// segments' ack frames still record, and closes it, which writes the
// checkpoint (synced). The caller's lock stays held throughout.
func rebuildCheckpoint(fsys vfs.FS, dir string, lock vfs.File) error {
	cfg := defaultConfig()
	cfg.fs, cfg.sync = fsys, SyncAlways
	l, err := openLocked(dir, cfg, lock, loadRebuild)
	if err != nil {
		return fmt.Errorf("wal: repair: rebuild the checkpoint: %w", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("wal: repair: rebuild the checkpoint: %w", err)
	}
	return nil
}

// resizeSegment gives a segment the size its header names: a short one is
// extended with zeros, bytes past the end of a long one are moved aside.
func resizeSegment(fsys vfs.FS, path string, movePiece pieceMover) error {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	defer f.Close()
	var hb [segment.HeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	h, err := segment.DecodeHeader(hb[:])
	if err != nil {
		return fmt.Errorf("wal: repair: %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	if fi.Size() > h.Size {
		if err := movePiece(path, f, h.Size, fi.Size()-h.Size); err != nil {
			return err
		}
		if err := f.Truncate(h.Size); err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
	} else if err := f.Allocate(h.Size); err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	return f.Sync()
}

// cutAt moves the bytes of the segment at path from off on, and every
// later segment, into the side file. A segment cut within its header
// goes whole.
func cutAt(fsys vfs.FS, dir, path string, off int64, movePiece pieceMover, moveFile func(string) error) error {
	ids, err := listSegments(fsys, dir)
	if err != nil {
		return err
	}
	cutID := uint64(0)
	for _, id := range ids {
		if vfs.Join(dir, segment.Name(id)) == path {
			cutID = id
		}
	}
	if cutID == 0 {
		// A missing segment: cut every segment after it.
		for _, id := range ids {
			if vfs.Join(dir, segment.Name(id)) > path {
				if err := moveFile(vfs.Join(dir, segment.Name(id))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if off < segment.HeaderSize {
		if err := moveFile(path); err != nil {
			return err
		}
	} else if err := cutFile(fsys, path, off, movePiece); err != nil {
		return err
	}
	for _, id := range ids {
		if id > cutID {
			if err := moveFile(vfs.Join(dir, segment.Name(id))); err != nil {
				return err
			}
		}
	}
	return nil
}

// pieceMover moves the n bytes of the file at path from off on, read from
// src, into the side file.
type pieceMover func(path string, src io.ReaderAt, off, n int64) error

// repairChunk is how much of a file Repair holds in memory at once.
const repairChunk = 1 << 20

// cutFile moves the non-zero bytes of the file from off on aside and
// zeros them in place.
func cutFile(fsys vfs.FS, path string, off int64, movePiece pieceMover) error {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	end, err := lastNonZeroAt(f, off, fi.Size())
	if err != nil {
		return fmt.Errorf("wal: repair: read %s: %w", path, err)
	}
	if end <= off {
		return nil
	}
	if err := movePiece(path, f, off, end-off); err != nil {
		return err
	}
	zeros := make([]byte, min(end-off, repairChunk))
	for pos := off; pos < end; pos += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(end-pos, int64(len(zeros)))], pos); err != nil {
			return fmt.Errorf("wal: repair: %w", err)
		}
	}
	return f.Sync()
}
