package walcat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
)

var statsCmd = &command{
	name:    "stats",
	summary: "summarise a log: segments, records, pending, bytes, high-water mark",
	usage: `Usage: walcat stats [flags] DIR

Prints a summary of the log: segments, records on disk (pending and
acknowledged), the next seq, the oldest pending record, live data (the
pending records' payload bytes), payload bytes raw and as stored with the
compression ratio, bytes on disk (with the next segment a writer has
prepared ahead of rotation, which holds no record yet), the durable
high-water mark, a torn tail if there is one, whether the log is encrypted
(and how many of its records are), and a table of the segments. The log is read without a lock and no
byte of it changes; an encrypted log needs no key.

Examples:
  walcat stats publisher.journal
  walcat stats --json DIR | jq .pending
`,
}

func init() { statsCmd.run = runStats }

type jsonStats struct {
	Dir              string        `json:"dir"`
	Segments         int           `json:"segments"`
	Records          int           `json:"records"`
	Pending          int           `json:"pending"`
	Acked            int           `json:"acked"`
	NextSeq          uint64        `json:"next_seq"`
	OldestPending    uint64        `json:"oldest_pending"` // 0: none
	PendingBytes     int64         `json:"pending_bytes"`
	RawBytes         int64         `json:"raw_bytes"`
	StoredBytes      int64         `json:"stored_bytes"`
	CompressionRatio float64       `json:"compression_ratio"` // raw/stored; 1 when nothing is stored
	DiskBytes        int64         `json:"disk_bytes"`
	PreparedBytes    int64         `json:"prepared_bytes"` // of disk_bytes: the writer's prepared next segment, no records
	HighWater        jsonHighWater `json:"high_water"`
	TornBytes        int64         `json:"torn_bytes"`
	TornOffset       int64         `json:"torn_offset"` // -1: none
	Encrypted        bool          `json:"encrypted"`
	EncryptedRecords int           `json:"encrypted_records"`
	SegmentList      []jsonSegment `json:"segment_list"`
}

type jsonHighWater struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
	Seq     uint64 `json:"seq"`
}

type jsonSegment struct {
	File       string `json:"file"`
	ID         uint64 `json:"id"`
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"` // 0: no record
	Records    int    `json:"records"`
	Pending    int    `json:"pending"`
	Size       int64  `json:"size"`
	DataEnd    int64  `json:"data_end"`
	Compacted  bool   `json:"compacted"`
	Generation uint64 `json:"generation"`
}

func runStats(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags(statsCmd)
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	dir, code, ok := c.parse(statsCmd, fs, args)
	if !ok {
		return code
	}
	if !c.checkDir("stats", dir) {
		return ExitUsage
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		return c.reportOpenError("stats", dir, err)
	}
	in := v.Info()
	v.Close()
	if *asJSON {
		printStatsJSON(c.stdout, in)
	} else {
		printStatsText(c.stdout, in)
	}
	return ExitOK
}

func ratio(in wal.Info) float64 {
	if in.StoredBytes == 0 {
		return 1
	}
	return float64(in.RawBytes) / float64(in.StoredBytes)
}

func printStatsText(w io.Writer, in wal.Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "log:\t%s\n", in.Dir)
	fmt.Fprintf(tw, "segments:\t%d\n", len(in.Segments))
	fmt.Fprintf(tw, "records:\t%d on disk: %d pending, %d acknowledged\n", in.Records, in.Pending, in.Acked)
	fmt.Fprintf(tw, "next seq:\t%d\n", in.NextSeq)
	if in.OldestPending != 0 {
		fmt.Fprintf(tw, "oldest pending:\tseq %d\n", in.OldestPending)
	} else {
		fmt.Fprintf(tw, "oldest pending:\tnone\n")
	}
	fmt.Fprintf(tw, "live data:\t%s (pending payloads, uncompressed)\n", sizeText(in.PendingBytes))
	fmt.Fprintf(tw, "payloads:\t%s raw, %s stored (compression ratio %.2f)\n", sizeText(in.RawBytes), sizeText(in.StoredBytes), ratio(in))
	if in.PreparedBytes > 0 {
		fmt.Fprintf(tw, "on disk:\t%s (segments and metadata; %s of them the prepared next segment, no records)\n",
			sizeText(in.DiskBytes), cliutil.IBytes(in.PreparedBytes))
	} else {
		fmt.Fprintf(tw, "on disk:\t%s (segments and metadata)\n", sizeText(in.DiskBytes))
	}
	if hw := in.HighWater; hw.Segment == 0 {
		fmt.Fprintf(tw, "high-water mark:\tnone (never synced)\n")
	} else {
		fmt.Fprintf(tw, "high-water mark:\tseq %d (segment %d, offset %d)\n", hw.Seq, hw.Segment, hw.Offset)
	}
	switch {
	case in.TornBytes > 0 && in.TornOffset >= 0:
		fmt.Fprintf(tw, "torn tail:\t%d bytes at offset %d of the last segment (the next Open cuts it)\n", in.TornBytes, in.TornOffset)
	case in.TornBytes > 0:
		// In segment files after the last one, whose header a power cut
		// took: at no offset of the last segment.
		fmt.Fprintf(tw, "torn tail:\t%d bytes in segment files whose header a power cut took (the next Open removes them)\n", in.TornBytes)
	default:
		fmt.Fprintf(tw, "torn tail:\tnone\n")
	}
	fmt.Fprintf(tw, "encrypted:\t%s\n", encryptedText(in))
	tw.Flush()
	if len(in.Segments) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "segment\tfirst seq\tlast seq\trecords\tpending\tsize\tdata end\n")
	for _, s := range in.Segments {
		last := "-"
		if s.LastSeq != 0 {
			last = fmt.Sprint(s.LastSeq)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d", filepath.Base(s.Path), s.FirstSeq, last, s.Records, s.Pending, s.Size, s.DataEnd)
		if s.Compacted {
			fmt.Fprintf(tw, "\tcompacted (generation %d)", s.Generation)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func printStatsJSON(w io.Writer, in wal.Info) {
	j := jsonStats{Dir: in.Dir, Segments: len(in.Segments), Records: in.Records, Pending: in.Pending,
		Acked: in.Acked, NextSeq: in.NextSeq, OldestPending: in.OldestPending, PendingBytes: in.PendingBytes,
		RawBytes: in.RawBytes, StoredBytes: in.StoredBytes, CompressionRatio: ratio(in), DiskBytes: in.DiskBytes,
		PreparedBytes: in.PreparedBytes, HighWater: jsonHighWater(in.HighWater), TornBytes: in.TornBytes, TornOffset: in.TornOffset,
		Encrypted: in.Encrypted, EncryptedRecords: in.EncryptedRecords, SegmentList: []jsonSegment{}}
	for _, s := range in.Segments {
		j.SegmentList = append(j.SegmentList, jsonSegment{File: filepath.Base(s.Path), ID: s.ID, FirstSeq: s.FirstSeq,
			LastSeq: s.LastSeq, Records: s.Records, Pending: s.Pending, Size: s.Size, DataEnd: s.DataEnd,
			Compacted: s.Compacted, Generation: s.Generation})
	}
	b, _ := json.Marshal(j)
	fmt.Fprintf(w, "%s\n", b)
}

// encryptedText says whether the log is encrypted, and how many of its
// records are.
func encryptedText(in wal.Info) string {
	switch {
	case !in.Encrypted:
		return "no"
	case in.EncryptedRecords == in.Records:
		return fmt.Sprintf("yes (AES-256-GCM; %d of %d records; dump needs --key-file)", in.EncryptedRecords, in.Records)
	default:
		return fmt.Sprintf("yes (AES-256-GCM; %d of %d records, the rest written before the log was encrypted; dump needs --key-file)",
			in.EncryptedRecords, in.Records)
	}
}

// sizeText shows a byte count exactly and, from 1 KiB on, in binary units.
func sizeText(n int64) string {
	if n < 1024 {
		return cliutil.IBytes(n)
	}
	return fmt.Sprintf("%d B (%s)", n, cliutil.IBytes(n))
}
