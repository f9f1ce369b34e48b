package kafka

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/walpub/walpub/wal"
)

// DefaultDeadLetterMaxBytes bounds the records kept in a journal's
// dead-letter log (their payload bytes). At the bound, records that no retry
// can fix stay in the journal, retried and logged, until the dead letters
// are requeued or dropped (RequeueDeadLetters, DropDeadLetters, walcat
// dead-letters), so that neither log grows without bound.
const DefaultDeadLetterMaxBytes = 256 << 20

// DeadLetterReport says what RequeueDeadLetters or DropDeadLetters did.
type DeadLetterReport struct {
	Moved   int // dead letters appended to the journal again (requeue)
	Dropped int // dead letters acknowledged in the dead-letter log, so that its space is reclaimed
	Kept    int // dead letters left where they were: no topic (an undecodable journal record kept as bytes)
}

// RequeueDeadLetters moves every record of the dead-letter log of the
// journal in dir back into the journal, oldest first, with its topic,
// partition, key, value, headers (its _id included) and timestamp: the next
// producer on the journal sends them again (fix the cause first, such as
// the broker's size limit). Each is journaled and synced before it leaves
// the dead-letter log, so a crash in between can duplicate a record, never
// lose one. opts are the journal's wal options (an encryption key, say).
// The journal must not be in use: RequeueDeadLetters takes its lock
// (wal.ErrLocked otherwise).
func RequeueDeadLetters(dir string, opts ...wal.Option) (DeadLetterReport, error) {
	return reclaimDeadLetters(dir, true, opts)
}

// DropDeadLetters acknowledges every record of the dead-letter log of the
// journal in dir, which gives up on them for good and lets the log reclaim
// their space. Like RequeueDeadLetters, it takes the journal's lock.
func DropDeadLetters(dir string, opts ...wal.Option) (DeadLetterReport, error) {
	return reclaimDeadLetters(dir, false, opts)
}

func reclaimDeadLetters(dir string, requeue bool, opts []wal.Option) (rep DeadLetterReport, err error) {
	// The journal's lock keeps producers out while the dead letters move.
	journal, err := wal.Open(dir, opts...)
	if err != nil {
		return rep, fmt.Errorf("kafka: opening journal %s: %w", dir, err)
	}
	defer func() { err = errors.Join(err, journal.Close()) }()
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir), deadLetterOptions(opts, 0)...)
	if err != nil {
		return rep, fmt.Errorf("kafka: opening the dead-letter log: %w", err)
	}
	defer func() { err = errors.Join(err, dl.Close()) }()
	var done []uint64
	// stopped: the move could not go on (the journal full, say). Those
	// moved so far still leave the dead-letter log below, or the next
	// requeue would append them to the journal again.
	var stopped error
	for rec, err := range dl.Pending() {
		if err != nil {
			stopped = fmt.Errorf("kafka: reading the dead-letter log: %w", err)
			break
		}
		if requeue {
			r, _, err := DecodeDeadLetter(rec.Data)
			if err != nil || r.Topic == "" {
				rep.Kept++
				continue
			}
			if seq, err := journal.Append(EncodeRecord(r)); err != nil {
				if seq != 0 {
					// Appended, its sync failed: the journal's Sync
					// below decides whether it leaves.
					done = append(done, rec.Seq)
				}
				stopped = fmt.Errorf("kafka: appending dead letter %d to the journal: %w", rec.Seq, err)
				break
			}
		}
		done = append(done, rec.Seq)
	}
	if len(done) == 0 {
		return rep, stopped
	}
	if requeue {
		// Journaled for good before the dead-letter log forgets them.
		if err := journal.Sync(); err != nil {
			return rep, fmt.Errorf("kafka: syncing the journal: %w", err)
		}
	}
	if err := dl.Ack(done...); err != nil {
		return rep, fmt.Errorf("kafka: acknowledging in the dead-letter log: %w", err)
	}
	if err := dl.Sync(); err != nil {
		return rep, fmt.Errorf("kafka: syncing the dead-letter log: %w", err)
	}
	if requeue {
		rep.Moved = len(done)
	} else {
		rep.Dropped = len(done)
	}
	return rep, stopped
}

// deadLetterOptions returns the dead-letter log's wal options: the
// journal's, with small segments and its own bound (0: unbounded).
func deadLetterOptions(journalOpts []wal.Option, maxBytes int64) []wal.Option {
	return append(slices.Clone(journalOpts), wal.WithSegmentSize(deadLetterSegmentSize), wal.WithMaxBytes(maxBytes))
}
