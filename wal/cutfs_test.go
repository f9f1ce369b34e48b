package wal

import (
	"bytes"
	"cmp"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// cutFS is a vfs.FS that models a power cut: it keeps what each file held
// when it was last synced, and the directory operations in order. At the
// cut it builds the image the disk would hold: the directory after the
// operations up to the last SyncDir plus any further prefix of them (a
// journaling file system commits metadata in order, at any moment), each
// file as last synced (zeros where never synced) and, in adversarial
// mode, a random subset of the pages written since (write-back that
// happened before the power went). After the cut every operation fails.
//
// Stores into a mapping bypass the interface; they are read from the
// files (the page cache) at the cut and at each sync.
//
// A SyncDir counts for the log directory only when it names it; one of
// the directory that holds it makes the log directory's own name durable
// (see dirMade). With bgWriteBack, pages also reach the disk between
// syncs as they are at that moment, so that the disk may hold a page in
// a state between its last sync and the cut. What it does not model:
// such states between two operations of the log (stores into a mapping
// in between), metadata other than names and sizes (modes, times), and a
// device that lies about its flushes.
type cutFS struct {
	fs  vfs.FS
	dir string // the log directory: names in the image are relative to it

	mu        sync.Mutex
	rng       *rand.Rand
	writeBack float64 // adversarial: the chance an unsynced page reached the disk
	// bgWriteBack: before each operation, the chance that the kernel
	// writes back, as they are then, a random half of the unsynced pages
	// (by grain) of one file taken at random.
	bgWriteBack float64
	// kill models a killed process instead of a power cut: the page
	// cache and every directory operation survive.
	kill bool
	// metaAll: every directory operation survives the power cut (the
	// journal was committed, as ext4 does at any fsync), file contents
	// only as synced.
	metaAll bool
	// unordered models a file system that does not keep unsynced
	// directory operations in order, at its worst: at the cut, every
	// removal since the last SyncDir survives and every creation and
	// rename since is lost. Only a SyncDir makes a name durable.
	unordered bool
	// subset models a file system that keeps any subset of the directory
	// operations since the last SyncDir: each survives the cut, or not,
	// at random, whatever came before or after it. A rename that
	// survives links its file under the new name even if the file's
	// creation did not.
	subset bool
	// lostSizes: a file's size changed since its last sync (extended by
	// a write or Allocate, cut by Truncate) is, at random, the size it
	// had at that sync (0 if never synced): the change never reached the
	// disk.
	lostSizes bool
	// grain is the unit in which unsynced data reaches the disk or not
	// (adversarial mode): 4096, a page, unless set (512, a sector).
	grain int
	// dirMade: MkdirAll created the log directory; dirDurable: a SyncDir
	// of the directory holding it made its name durable since. In
	// unordered mode a log directory made but not durable is gone at the
	// cut, with everything in it.
	dirMade, dirDurable bool
	// keep, if set, says how many of the n directory operations since the
	// last SyncDir survive the cut (journaled mode), instead of a random
	// number.
	keep func(n int) int
	// keepSet, if set, says which of the n directory operations since the
	// last SyncDir survive the cut in subset mode (bit i: the i-th),
	// instead of a random subset.
	keepSet    func(n int) uint64
	ops        []dirOp
	durableOps int
	inodes     map[uint64]*inode
	live       map[string]uint64 // name -> inode, as the process sees it
	// trigger is called before every operation, with its kind and path;
	// returning true cuts the power before it happens.
	trigger func(kind, path string) bool
	image   map[string][]byte // set at the cut
	// sbSeq is the highest seq a superblock slot written before the cut
	// records: the log wrote it after syncing every record up to it.
	sbSeq uint64
	// opsSeen counts the operations by kind, up to the cut.
	opsSeen map[string]int
}

type inode struct {
	f      *os.File // our own handle, to read what the file holds now
	synced []byte   // what it held at its last sync; nil if never synced
	// disk is what the disk holds, if background write-back
	// (bgWriteBack) wrote pages since the last sync; nil: synced.
	disk []byte
}

type dirOp struct {
	kind byte // 'c' create, 'r' rename, 'd' remove
	a, b string
	ino  uint64
}

func newCutFS(dir string, seed uint64, writeBack float64) *cutFS {
	return &cutFS{fs: vfs.OS, dir: dir, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), writeBack: writeBack,
		inodes: map[uint64]*inode{}, live: map[string]uint64{}, opsSeen: map[string]int{}}
}

// adopt takes the files already in the log directory as durable, names
// and contents: for a cutFS over an existing log (Repair's, say).
func (c *cutFS) adopt() error {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(c.dir, e.Name())
		h, err := os.Open(path)
		if err != nil {
			return err
		}
		fi, err := h.Stat()
		if err != nil {
			h.Close()
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			h.Close()
			return err
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		c.inodes[ino] = &inode{f: h, synced: b}
		c.live[e.Name()] = ino
		c.ops = append(c.ops, dirOp{kind: 'c', a: e.Name(), ino: ino})
	}
	c.durableOps = len(c.ops)
	return nil
}

var errPowerCut = &os.PathError{Op: "power", Path: "cut", Err: syscall.EIO}

// enter is called before each operation, under mu: it cuts the power if
// the trigger says so and reports whether the power is out.
func (c *cutFS) enter(kind, path string) bool {
	if c.image != nil {
		return true
	}
	if c.trigger != nil && c.trigger(kind, path) {
		c.cutLocked()
		return true
	}
	if c.bgWriteBack > 0 && !c.kill && c.rng.Float64() < c.bgWriteBack {
		c.writeBackLocked()
	}
	c.opsSeen[kind]++
	return false
}

// cut cuts the power now, if it is not out already.
func (c *cutFS) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image == nil {
		c.cutLocked()
	}
}

// isCut reports whether the power is out.
func (c *cutFS) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.image != nil
}

func (c *cutFS) cutLocked() {
	if (c.unordered || c.subset && c.rng.IntN(2) == 0) && c.dirMade && !c.dirDurable {
		c.image = map[string][]byte{}
		return
	}
	k := c.durableOps
	if n := len(c.ops) - k; c.kill || c.metaAll {
		k = len(c.ops)
	} else if c.keep != nil {
		k += c.keep(n)
	} else if n > 0 {
		k += c.rng.IntN(n + 1)
	}
	ops := c.ops[:k]
	switch {
	case c.unordered:
		ops = c.ops[:c.durableOps:c.durableOps]
		for _, op := range c.ops[c.durableOps:] {
			if op.kind == 'd' {
				ops = append(ops, op)
			}
		}
	case c.subset && !c.kill && !c.metaAll:
		ops = c.ops[:c.durableOps:c.durableOps]
		mask := c.rng.Uint64()
		if c.keepSet != nil {
			mask = c.keepSet(len(c.ops) - c.durableOps)
		}
		for i, op := range c.ops[c.durableOps:] {
			if i >= 64 || mask>>i&1 == 1 {
				ops = append(ops, op)
			}
		}
	}
	names := map[string]uint64{}
	for _, op := range ops {
		switch op.kind {
		case 'c':
			names[op.a] = op.ino
		case 'r':
			if ino, ok := names[op.a]; ok {
				delete(names, op.a)
				names[op.b] = ino
			} else if c.subset && op.ino != 0 {
				names[op.b] = op.ino
			}
		case 'd':
			delete(names, op.a)
		}
	}
	c.image = map[string][]byte{}
	for name, ino := range names {
		in := c.inodes[ino]
		fi, err := in.f.Stat()
		if err != nil {
			panic(err)
		}
		cur := make([]byte, fi.Size())
		n, _ := in.f.ReadAt(cur, 0)
		cur = cur[:n]
		size := len(cur)
		base := in.onDisk()
		if c.lostSizes && !c.kill && len(base) != size && c.rng.IntN(2) == 0 {
			size = len(base)
		}
		img := make([]byte, size)
		copy(img, base)
		grain := cmp.Or(c.grain, 4096)
		if c.kill {
			copy(img, cur)
		} else if c.writeBack > 0 {
			for off := 0; off < min(size, len(cur)); off += grain {
				end := min(off+grain, size, len(cur))
				if !bytes.Equal(img[off:end], cur[off:end]) && c.rng.Float64() < c.writeBack {
					copy(img[off:end], cur[off:end])
				}
			}
		}
		c.image[name] = img
	}
}

// onDisk returns what the disk holds of the file (before the cut's own
// write-back).
func (in *inode) onDisk() []byte {
	if in.disk != nil {
		return in.disk
	}
	return in.synced
}

// writeBackLocked writes back, as they are now, a random half of the
// pages (by grain) of one file taken at random that differ from what the
// disk holds; the file's size on disk becomes its size now.
func (c *cutFS) writeBackLocked() {
	if len(c.live) == 0 {
		return
	}
	names := make([]string, 0, len(c.live))
	for name := range c.live {
		names = append(names, name)
	}
	slices.Sort(names)
	in := c.inodes[c.live[names[c.rng.IntN(len(names))]]]
	fi, err := in.f.Stat()
	if err != nil {
		return
	}
	cur := make([]byte, fi.Size())
	n, _ := in.f.ReadAt(cur, 0)
	cur = cur[:n]
	disk := make([]byte, len(cur))
	copy(disk, in.onDisk())
	grain := cmp.Or(c.grain, 4096)
	for off := 0; off < len(cur); off += grain {
		end := min(off+grain, len(cur))
		if !bytes.Equal(disk[off:end], cur[off:end]) && c.rng.IntN(2) == 0 {
			copy(disk[off:end], cur[off:end])
		}
	}
	in.disk = disk
}

func (c *cutFS) rel(path string) string {
	return strings.TrimPrefix(path, c.dir+string(filepath.Separator))
}

func (c *cutFS) close() {
	for _, in := range c.inodes {
		in.f.Close()
	}
}

func (c *cutFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("open", name) {
		return nil, errPowerCut
	}
	_, existed := c.live[c.rel(name)]
	f, err := c.fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	if _, ok := c.inodes[ino]; !ok {
		h, err := os.Open(name)
		if err != nil {
			f.Close()
			return nil, err
		}
		c.inodes[ino] = &inode{f: h}
	}
	if !existed {
		c.live[c.rel(name)] = ino
		c.ops = append(c.ops, dirOp{kind: 'c', a: c.rel(name), ino: ino})
	}
	return &powerFile{File: f, c: c, ino: ino, name: c.rel(name)}, nil
}

func (c *cutFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("remove", name) {
		return errPowerCut
	}
	if err := c.fs.Remove(name); err != nil {
		return err
	}
	delete(c.live, c.rel(name))
	c.ops = append(c.ops, dirOp{kind: 'd', a: c.rel(name)})
	return nil
}

func (c *cutFS) Rename(oldpath, newpath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("rename", c.rel(oldpath)+"->"+c.rel(newpath)) {
		return errPowerCut
	}
	if err := c.fs.Rename(oldpath, newpath); err != nil {
		return err
	}
	ino := c.live[c.rel(oldpath)]
	c.live[c.rel(newpath)] = ino
	delete(c.live, c.rel(oldpath))
	c.ops = append(c.ops, dirOp{kind: 'r', a: c.rel(oldpath), b: c.rel(newpath), ino: ino})
	return nil
}

func (c *cutFS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("readdir", name) {
		return nil, errPowerCut
	}
	return c.fs.ReadDir(name)
}

func (c *cutFS) MkdirAll(name string, perm fs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("mkdir", name) {
		return errPowerCut
	}
	_, err := os.Stat(name)
	made := filepath.Clean(name) == filepath.Clean(c.dir) && errors.Is(err, fs.ErrNotExist)
	if err := c.fs.MkdirAll(name, perm); err != nil {
		return err
	}
	if made {
		c.dirMade = true
	}
	return nil
}

func (c *cutFS) SyncDir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("syncdir", name) {
		return errPowerCut
	}
	// No real flush: the model keeps what a sync covers itself, and
	// fsyncs on a loaded disk would make up most of the tests' time.
	if _, err := os.Stat(name); err != nil {
		return err
	}
	switch filepath.Clean(name) {
	case filepath.Clean(c.dir):
		c.durableOps = len(c.ops)
	case filepath.Dir(filepath.Clean(c.dir)):
		c.dirDurable = true
	}
	return nil
}

type powerFile struct {
	vfs.File
	c    *cutFS
	ino  uint64
	name string
}

func (f *powerFile) Sync() error {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("sync", f.name) {
		return errPowerCut
	}
	// What the file holds now is what the sync makes durable (stores
	// made after this moment may or may not be: the model says not).
	in := c.inodes[f.ino]
	fi, err := in.f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, fi.Size())
	n, _ := in.f.ReadAt(b, 0)
	// No real fdatasync (see SyncDir).
	in.synced, in.disk = b[:n], nil
	return nil
}

func (f *powerFile) WriteAt(p []byte, off int64) (int, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("write", f.name) {
		return 0, errPowerCut
	}
	if f.name == index.SuperblockName && len(p) == 64 {
		b := make([]byte, off+64)
		copy(b[off:], p)
		if sb, err := index.DecodeSuperblock(b); err == nil {
			c.sbSeq = max(c.sbSeq, sb.Seq)
		}
	}
	return f.File.WriteAt(p, off)
}

func (f *powerFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enter("write", f.name) {
		return 0, errPowerCut
	}
	return f.File.WriteVAt(bufs, off)
}

// out reports whether the power is out at an operation of kind on f.
func (f *powerFile) out(kind string) bool {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	return f.c.enter(kind, f.name)
}

func (f *powerFile) Allocate(size int64) error {
	if f.out("allocate") {
		return errPowerCut
	}
	return f.File.Allocate(size)
}

func (f *powerFile) Truncate(size int64) error {
	if f.out("truncate") {
		return errPowerCut
	}
	return f.File.Truncate(size)
}
