package wal_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/walpub/walpub/wal"
)

// Records are appended, read back in order until acknowledged, and
// survive a restart; acknowledged ones do not come back.
func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := wal.Open(dir, wal.WithSegmentSize(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	first, _ := l.Append([]byte("hello"))
	batch, _ := l.AppendBatch([][]byte{[]byte("one"), []byte("two")})
	fmt.Println("appended", first, "and", batch, batch+1)
	if err := l.Ack(first); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	l, err = wal.Open(dir, wal.WithSegmentSize(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for r, err := range l.Pending() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pending %d %s\n", r.Seq, r.Data)
	}
	_, err = l.Get(first)
	fmt.Println("acknowledged:", errors.Is(err, wal.ErrNotFound))
	next, _ := l.Append([]byte("three"))
	fmt.Println("next seq", next)
	// Output:
	// appended 1 and 2 3
	// pending 2 one
	// pending 3 two
	// acknowledged: true
	// next seq 4
}

// Open reports damage that is not a torn tail as a *CorruptionError;
// Repair moves the damaged bytes aside so that the log opens again.
func ExampleRepair() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, wal.WithSegmentSize(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	l.Append([]byte("kept"))
	l.Append([]byte("damaged"))
	l.Close()

	// Damage the second record's bytes on disk.
	seg := filepath.Join(dir, "00000000000000000001.seg")
	b, _ := os.ReadFile(seg)
	b[64+40+32] ^= 0xff
	os.WriteFile(seg, b, 0o600)

	_, err = wal.Open(dir, wal.WithSegmentSize(64<<10))
	var ce *wal.CorruptionError
	fmt.Println("corrupt:", errors.As(err, &ce), filepath.Base(ce.Path), ce.Offset, ce.Seq)

	rep, err := wal.Repair(dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cut at", rep.Offset, "moved aside:", rep.Moved > 0)
	l, err = wal.Open(dir, wal.WithSegmentSize(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for r := range l.Pending() {
		fmt.Printf("pending %d %s\n", r.Seq, r.Data)
	}
	// Output:
	// corrupt: true 00000000000000000001.seg 104 2
	// cut at 104 moved aside: true
	// pending 1 kept
}
