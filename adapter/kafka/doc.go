// Package kafka publishes records to Apache Kafka at least once, even when
// the network fails, the broker restarts or the publishing process is
// killed. It is the Go counterpart of hop-client's RobustProducer, on
// franz-go (kgo), with a [wal.Log] as its journal.
//
// [Producer.Write] appends the record to a journal on local disk and
// returns. A background sender hands journaled records to a franz-go client
// (idempotent, acks=all) and, once the broker confirms a record, marks it
// acknowledged in the journal and calls the [WithOnDelivery] callback. A
// record that is not confirmed is sent again, with backoff, for as long as
// it takes; a process that dies leaves its unconfirmed records in the
// journal, and the next [NewProducer] on that journal sends them, oldest
// first.
//
// # Usage
//
// The reference uses the producer as a context manager; in Go, Close is
// deferred. Close drains: it returns once every record is confirmed (or its
// context ends, leaving the rest journaled for the next run).
//
//	p, err := kafka.NewProducer("kafka://hostname:9092/topic")
//	if err != nil {
//		return err
//	}
//	defer p.Close(ctx)
//	for _, m := range messages {
//		if err := p.Write(ctx, &kgo.Record{Value: m}); err != nil {
//			return err
//		}
//	}
//
// The explicit lifecycle has no start step: NewProducer starts the sender.
//
//	p, err := kafka.NewProducer("kafka://hostname:9092/topic",
//		kafka.WithJournal("/var/lib/app/publisher.journal"),
//		kafka.WithSASL("SCRAM-SHA-512", user, password),
//		kafka.WithTLS(&tls.Config{}))
//	// ...
//	err = p.Write(ctx, record)
//	// ...
//	err = p.Flush(ctx)  // optional: wait until everything so far is confirmed
//	// ...
//	ctx, cancel := context.WithTimeout(ctx, time.Minute)
//	defer cancel()
//	err = p.Close(ctx)  // context.DeadlineExceeded: the rest waits in the journal
//
// The examples run against franz-go's in-process broker, kfake.
//
// # Guarantees
//
//   - At least once: a record whose Write returned reaches the broker, or
//     the dead-letter log, even across crashes of the process, provided the
//     journal survives (see Limits).
//   - Per partition, records reach the broker in the order they were
//     written, apart from duplicates caused by resends. The client retries
//     retriable errors itself, in order; when it gives up on records, the
//     sender holds back the records of their partition (with
//     kgo.ManualPartitioner) or else of their topic until the client has
//     reported every record of that partition, then resends the failed
//     records, in order, before anything newer of theirs. Other partitions
//     and topics keep flowing meanwhile, also past a partition that stays
//     unavailable, until that partition's records fill the in-flight
//     window (WithMaxInFlight): the client keeps retrying them, and while
//     they take the whole window nothing else is sent, as with a bare
//     franz-go client, whose buffer (kgo.MaxBufferedRecords) they would
//     fill the same way. One exception: when the client gives up on a
//     partition's records (an error it does not retry itself, such as a
//     too-large record or a refused authorization), the sender learns it
//     from the client's completion queue, behind the confirmations queued
//     before; the records of that partition it hands the client meanwhile,
//     up to the in-flight window, can land before the failed ones are
//     resent (see sender.go).
//   - Every record carries a 16-byte "_id" header (a random version 4 UUID,
//     as the reference's duplicate-detection header), chosen at Write and
//     journaled, so that it is the same in every copy; a caller's own "_id"
//     header is kept instead.
//   - Errors that no retry can fix — the record is too large for the broker
//     (tried alone, so that neighbours failed with it are not blamed), the
//     topic is invalid, the partition
//     (kgo.ManualPartitioner) does not exist after three tries with the
//     client's metadata refreshed between them — move the record to a
//     dead-letter log in the journal directory ("dead-letter", a [wal.Log]
//     whose entries [DecodeDeadLetter] reads: the record and the error
//     text). It is logged, counted in [Stats].DeadLettered and reported to
//     [WithOnDeadLetter]. Nothing is dropped silently; every other error is
//     retried, a refused authorization included (an ACL may be propagating
//     or granted later; a client that keeps a refused producer ID is
//     replaced).
//   - Memory does not grow with the backlog: at most [WithMaxInFlight]
//     records (10000, 8 MiB by default) are in flight, up to a quarter of
//     that more waits in memory between Write and the sender, and the rest
//     is read from the journal when the window has room. A million pending
//     records cost their seq ranges.
//   - A Producer is safe for concurrent use. Write may be called from many
//     goroutines; records written concurrently have no order among them.
//
// # Limits
//
//   - Duplicates: a record is sent again whenever its confirmation is not
//     known to have arrived (a lost response, a crash after the broker wrote
//     it). Consumers that must not see duplicates drop repeated "_id"s.
//   - Durability is the journal's: by default it syncs every 100 ms
//     ([wal.SyncEvery]), so a record survives a killed process, and a power
//     cut or kernel crash loses at most about the last 100 ms written; pass
//     wal.WithSync(wal.SyncAlways) through [WithWAL] to have Write return
//     only once the record is on stable storage.
//   - A damaged journal stops NewProducer with a [*wal.CorruptionError]
//     naming file and offset, as the reference does; a record torn by a
//     crash mid-write is dropped from the tail instead, and Write had not
//     returned for it. [wal.Repair] (walcat repair) cuts the damage off,
//     moving the bytes aside, so that the producer starts again.
//   - The journal holds records in the clear (files mode 0600 in a 0700
//     directory by default): protect it like the data.
//   - With every broker unreachable and a context without deadline, Flush
//     and Close wait as long as the brokers stay away, as the reference's
//     stop does.
//   - A record without a key is partitioned when it is sent, so a resend may
//     go to another partition than the first attempt did.
//   - Client options passed with [WithClient] that limit retries or record
//     lifetimes (kgo.RecordRetries, kgo.RecordDeliveryTimeout), or that
//     disable idempotence, make the client give up earlier; the producer
//     then resends, which can duplicate and, without idempotence, reorder.
//
// # Exactly once
//
// With [WithExactlyOnce] the sender produces records inside Kafka
// transactions (franz-go's transactional producer) under one transactional
// ID per journal, and acknowledges them in the journal only once their
// transaction committed. A transaction collects records for up to 100 ms or
// one [WithMaxInFlight] window, whichever comes first, then commits; a
// record the client fails aborts its transaction and every record of it is
// sent again in the next one. A consumer reading with
// isolation.level=read_committed then sees each record whose Write
// returned exactly once, through kill -9 of the producer at any moment
// (also between a commit and the journal's acknowledgement), broker
// restarts, lost responses and cut connections:
//
//   - NewProducer fences the ID first (InitProducerID: a transaction an
//     earlier process left open is aborted, one it was committing is
//     completed), then, before sending, reads back read_committed the
//     partitions its journaled records may have reached since the last
//     commit it knows of, and acknowledges (and reports to
//     [WithOnDelivery]) the records whose topic and "_id" it finds there;
//     only the rest is sent. A commit whose outcome is unknown (a lost
//     EndTxn response) is settled the same way with a new client. What this
//     needs is kept in "exactly-once.json" in the journal directory: the
//     ID, and per partition an offset below which nothing is left to
//     settle.
//   - The ID: WithExactlyOnce("") derives one ("walpub-" and 32 hex digits)
//     and stores it in the journal directory on first use, so it is the
//     same across restarts of the journal and different for different
//     journals. A copy of a journal shares its ID: the newer producer
//     fences the older, whose Write, Flush and Close then return [ErrFenced]
//     while its uncommitted records stay in its journal. Never run two
//     producers on copies of one journal on purpose.
//   - A broker that refuses transactions (no transaction support, the ID
//     not authorized) makes NewProducer fail with
//     [ErrTransactionsUnavailable]; there is no silent fallback to at least
//     once. An unreachable broker does not: NewProducer waits up to 5 s
//     for an answer, then the sender fences before it sends anything.
//   - Consumers reading read_uncommitted (the default of most clients,
//     kcat included) may see records of aborted transactions: copies that
//     were sent again, and records of a fenced producer. Only
//     read_committed consumers see each record once.
//   - ACLs: Write (and Describe) on the transactional ID, Write on the
//     topics, and Read on the topics for the read-back; IdempotentWrite on
//     the cluster for brokers before Kafka 3.0.
//   - Records that no retry can fix go to the dead-letter log as without
//     the option: they are part of no committed transaction.
//   - [Stats], [Producer.Flush], [Producer.Close] and [WithOnDelivery]
//     mean the same as without it, "confirmed" meaning "committed": Flush
//     waits for the commit (up to the 100 ms a transaction collects). A
//     Close whose context ends first aborts the open transaction (its
//     records stay journaled); a killed process leaves it to the next
//     NewProducer's fence or the broker's one-minute transaction timeout,
//     during which read_committed consumers of its partitions wait.
//   - Throughput: see the README for the ratio to at-least-once mode
//     measured on a real broker.
//
// # Journal records
//
// Each journal record is one Kafka record in the binary format of
// [EncodeRecord]: a magic "WPKR", a version byte, flags, the timestamp in
// milliseconds, the partition, then the topic, key, value and headers, each
// prefixed with its length (see codec.go for the byte layout). [IsRecord]
// recognises it and [DecodeRecord] reads it back, checking every length
// against the bytes present; tools such as walcat use them.
package kafka
