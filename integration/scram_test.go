package integration

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/wal"
)

// scramEnv returns the SCRAM listener and credentials that
// scripts/kafka.sh env exports, skipping the test without them.
func scramEnv(t *testing.T) (addr, mechanism, user, password string) {
	t.Helper()
	addr = os.Getenv("KAFKA_SCRAM_BROKERS")
	mechanism = os.Getenv("KAFKA_SCRAM_MECHANISM")
	user = os.Getenv("KAFKA_SCRAM_USER")
	password = os.Getenv("KAFKA_SCRAM_PASSWORD")
	if addr == "" || user == "" {
		t.Skip("KAFKA_SCRAM_BROKERS / KAFKA_SCRAM_USER not set; eval $(scripts/kafka.sh env)")
	}
	if mechanism == "" {
		mechanism = "SCRAM-SHA-512"
	}
	return addr, mechanism, user, password
}

// TestIntegrationSCRAM produces over the SASL_PLAINTEXT listener with
// SCRAM: the right password delivers; a wrong one delivers nothing, the
// authentication failure shows in the producer's log, and the records stay
// in the journal, from which a producer with the right password then
// delivers them.
func TestIntegrationSCRAM(t *testing.T) {
	b := brokers(t)
	addr, mech, user, password := scramEnv(t)
	topic := topicName(t)
	createTopic(t, b, topic, 1)
	url := "kafka://" + addr + "/" + topic
	ctx := context.Background()

	// Accepted.
	logger, _ := newLogger(t)
	p := newProducer(t, url,
		kafka.WithJournal(t.TempDir()),
		kafka.WithLogger(logger),
		kafka.WithSASL(mech, user, password))
	keys := writeKeys(t, func(r *kgo.Record) error { return p.Write(ctx, r) }, "a-ok", 100, nil, 0)
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatalf("Flush with the right password: %v (stats %+v)", err, p.Stats())
	}
	if err := p.Close(fctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Refused.
	journal := t.TempDir()
	badLogger, logs := newLogger(t)
	bad := newProducer(t, url,
		kafka.WithJournal(journal),
		kafka.WithLogger(badLogger),
		kafka.WithSASL(mech, user, password+"-wrong"),
		kafka.WithRetryBackoff(100*time.Millisecond, time.Second))
	refused := writeKeys(t, func(r *kgo.Record) error { return bad.Write(ctx, r) }, "b-refused", 20, nil, 0)
	sctx, scancel := context.WithTimeout(ctx, 8*time.Second)
	err := bad.Flush(sctx)
	scancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with a wrong password = %v, want the context's deadline (nothing can be confirmed)", err)
	}
	st := bad.Stats()
	t.Logf("stats with a wrong password: %+v", st)
	if st.Delivered != 0 || st.DeadLettered != 0 {
		t.Errorf("with a wrong password: %d delivered, %d dead-lettered; want none of either: the records must wait in the journal",
			st.Delivered, st.DeadLettered)
	}
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	err = bad.Close(cctx)
	ccancel()
	t.Logf("Close with a wrong password: %v", err)

	// The failure must be visible in the producer's own log, which gets
	// the client's warnings and errors.
	authErr := regexp.MustCompile(`(?im)^.*(SASL_AUTHENTICATION_FAILED|authentication failed|invalid credentials).*$`)
	if !authErr.MatchString(logs.String()) {
		t.Errorf("the producer's log does not mention the authentication failure:\n%s", logs.String())
	} else {
		t.Logf("the producer logged: %s", authErr.FindString(logs.String()))
	}

	// Nothing was lost: the journal still holds every refused record.
	j, err := wal.Open(journal)
	if err != nil {
		t.Fatalf("reopening the journal: %v", err)
	}
	js := j.Stats()
	if err := j.Close(); err != nil {
		t.Fatalf("closing the journal: %v", err)
	}
	if js.Pending != len(refused) {
		t.Errorf("journal after the refused run: %d records pending, want %d", js.Pending, len(refused))
	}
	// Nothing was delivered, as the broker sees it (the stats above are the
	// producer's own view): the topic holds no refused record yet.
	onBroker := 0
	for _, m := range consume(t, b, topic) {
		if strings.HasPrefix(m.key, "b-refused") {
			onBroker++
		}
	}
	if onBroker > 0 {
		t.Errorf("%d records reached the broker from the producer with a wrong password", onBroker)
	}

	// The right password on the same journal delivers them.
	logger2, _ := newLogger(t)
	good := newProducer(t, url,
		kafka.WithJournal(journal),
		kafka.WithLogger(logger2),
		kafka.WithSASL(mech, user, password))
	if err := good.Flush(fctx); err != nil {
		t.Fatalf("Flush of the refused records with the right password: %v (stats %+v)", err, good.Stats())
	}
	st = good.Stats()
	if err := good.Close(fctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st.Delivered != int64(len(refused)) {
		t.Errorf("the right password delivered %d of the %d journaled records", st.Delivered, len(refused))
	}
	verify(t, b, topic, append(keys, refused...), verifyOptions{})
}

// topicWriteACL is a DENY ACL on topic's WRITE for user, to create or, as
// a filter, to delete.
func topicWriteACL(topic, user string) (kmsg.CreateACLsRequestCreation, kmsg.DeleteACLsRequestFilter) {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, topic, kmsg.ACLResourcePatternTypeLiteral
	c.Principal, c.Host = "User:"+user, "*"
	c.Operation, c.PermissionType = kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeDeny
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourceName, f.ResourcePatternType = c.ResourceType, &c.ResourceName, c.ResourcePatternType
	f.Principal, f.Host = &c.Principal, &c.Host
	f.Operation, f.PermissionType = c.Operation, c.PermissionType
	return c, f
}

// TestIntegrationSCRAMDeniedRetried (issue 17 item 1 on the real broker):
// while an ACL denies the SCRAM user WRITE on the topic, the broker refuses
// every record with an authorization error, which can change without the
// producer's doing: the records are retried, none dead-lettered. Once the
// ACL is removed, every record is delivered, once.
func TestIntegrationSCRAMDeniedRetried(t *testing.T) {
	b := brokers(t)
	addr, mech, user, password := scramEnv(t)
	topic := topicName(t)
	createTopic(t, b, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The ACLs are managed over PLAINTEXT, whose principal is a super user
	// (scripts/kafka.sh).
	admin, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(b, ",")...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer admin.Close()
	deny, filter := topicWriteACL(topic, user)
	creq := kmsg.NewPtrCreateACLsRequest()
	creq.Creations = append(creq.Creations, deny)
	cresp, err := creq.RequestWith(ctx, admin)
	if err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
	if err := kerr.ErrorForCode(cresp.Results[0].ErrorCode); err != nil {
		t.Fatalf("CreateACLs: %v (is the broker's authorizer configured? scripts/kafka.sh sets one)", err)
	}

	logger, logs := newLogger(t)
	var deadLettered atomic.Int64
	p := newProducer(t, "kafka://"+addr+"/"+topic,
		kafka.WithJournal(t.TempDir()),
		kafka.WithLogger(logger),
		kafka.WithSASL(mech, user, password),
		kafka.WithRetryBackoff(50*time.Millisecond, 500*time.Millisecond),
		kafka.WithOnDeadLetter(func(*kgo.Record, error) { deadLettered.Add(1) }))
	const n = 50
	keys := writeKeys(t, func(r *kgo.Record) error { return p.Write(ctx, r) }, "denied", n, nil, 0)

	// The refusal fired: records were retried, again and again, and none
	// was delivered or dead-lettered. (The ACL reaches the authorizer
	// through the metadata log; a record sent before it did could be
	// delivered, which the checks below would report.)
	var st kafka.Stats
	for first := int64(-1); ; time.Sleep(100 * time.Millisecond) {
		st = p.Stats()
		if first < 0 && st.Retries > 0 {
			first = st.Retries
		}
		if first > 0 && st.Retries >= first+2*n || st.Delivered+st.DeadLettered > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the denied records were not retried: stats %+v", st)
		}
	}
	t.Logf("while denied: stats %+v", st)
	if st.Delivered != 0 || st.DeadLettered != 0 || deadLettered.Load() != 0 {
		t.Fatalf("while WRITE is denied: %d delivered, %d dead-lettered; want the records retried", st.Delivered, st.DeadLettered)
	}
	authErr := regexp.MustCompile(`(?i)TOPIC_AUTHORIZATION_FAILED|not authorized`)
	if !authErr.MatchString(logs.String()) {
		t.Errorf("the producer's log does not mention the authorization failure:\n%s", logs.String())
	}

	dreq := kmsg.NewPtrDeleteACLsRequest()
	dreq.Filters = append(dreq.Filters, filter)
	dresp, err := dreq.RequestWith(ctx, admin)
	if err != nil {
		t.Fatalf("DeleteACLs: %v", err)
	}
	if r := dresp.Results[0]; r.ErrorCode != 0 || len(r.MatchingACLs) != 1 {
		t.Fatalf("DeleteACLs: %v, %d ACLs deleted", kerr.ErrorForCode(r.ErrorCode), len(r.MatchingACLs))
	}
	st = drain(t, ctx, p, " after the ACL was removed")
	if st.Delivered != n || deadLettered.Load() != 0 {
		t.Errorf("after the ACL was removed: stats %+v, want %d delivered and none dead-lettered", st, n)
	}
	if v := verify(t, b, topic, keys, verifyOptions{}); v.duplicates != 0 {
		t.Errorf("%d duplicates: a refused record was written", v.duplicates)
	}
}
