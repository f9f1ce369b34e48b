package walpub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
)

// testCA makes a CA and a certificate for 127.0.0.1 signed by it; it
// returns the server's TLS config and the path of the CA's PEM file.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "walpub test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}, caFile
}

// hopHome writes auth.toml into a fresh XDG_CONFIG_HOME and returns an
// environment for Main that points there.
func hopHome(t *testing.T, authToml string, mode os.FileMode) func(string) string {
	t.Helper()
	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "hop"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(xdg, "hop", "auth.toml")
	if err := os.WriteFile(p, []byte(authToml), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return func(k string) string { return map[string]string{"XDG_CONFIG_HOME": xdg}[k] }
}

func walpubEnv(t *testing.T, getenv func(string) string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: getenv})
	return result{out.String(), errOut.String(), code}
}

// TestHopCredentials: without --sasl walpub publishes with the credential
// hop-client would choose from its auth.toml, over TLS + SCRAM (SASL_SSL,
// as Hopskotch is reached) verified with the file's CA; the user is the
// _sender; kafka://USER@ chooses among several.
func TestHopCredentials(t *testing.T) {
	serverTLS, caFile := testCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "alerts"), kfake.TLS(serverTLS),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "alice", "alice-pw"), kfake.User("SCRAM-SHA-512", "bob", "bob-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	_, port, _ := net.SplitHostPort(addr)
	auth := fmt.Sprintf(`
[[auth]]
username = "alice"
password = "alice-pw"
hostname = "127.0.0.1:%[1]s"
ssl_ca_location = %[2]q

[[auth]]
username = "bob"
password = "bob-pw"
hostname = "127.0.0.1:%[1]s"
ssl_ca_location = %[2]q
mechanism = "SCRAM_SHA_512"

[[auth]]
username = "elsewhere"
password = "x"
hostname = "kafka.example.org"
`, port, caFile)
	getenv := hopHome(t, auth, 0o600)
	journal := filepath.Join(t.TempDir(), "j")
	url := "kafka://alice@" + addr + "/alerts"
	r := walpubEnv(t, getenv, "{\"n\": 1}\n{\"n\": 2}\n", "--journal", journal, "--hop-format", "json", "--drain-timeout", "30s", url)
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf(`walpub: hop credential "alice" for %s from %s (SCRAM-SHA-512 over TLS)`, addr, filepath.Join(strings.TrimSuffix(getenv("XDG_CONFIG_HOME"), "/"), "hop", "auth.toml"))) {
		t.Errorf("stderr: %s", r.stderr)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	recs := readTopicOpts(t, c.ListenAddrs(), "alerts", kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha512Mechanism()))
	if len(recs) != 2 {
		t.Fatalf("%d records on the topic", len(recs))
	}
	for _, rec := range recs {
		if got := hopHeaders(rec); !slices.Equal(got, []string{"_sender=alice", "_format=json", "_id/16"}) {
			t.Errorf("headers %q", got)
		}
	}

	// Two credentials for the broker and no user in the URL: hop's error.
	r = walpubEnv(t, getenv, "x\n", "--journal", journal, "kafka://"+addr+"/alerts")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "hop: ambiguous credentials for "+addr+": alice, bob (name one in the URL: kafka://USER@") {
		t.Errorf("ambiguous: %s", r)
	}
	// bob's credential, chosen in the URL, is used: his _sender.
	r = walpubEnv(t, getenv, "{}\n", "--journal", journal, "--hop-format", "json", "--drain-timeout", "30s", "kafka://bob@"+addr+"/alerts")
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs = readTopicOpts(t, c.ListenAddrs(), "alerts", kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha512Mechanism()))
	if len(recs) != 3 || string(header(recs[2], "_sender")) != "bob" {
		t.Errorf("bob's record: %d records, sender %q", len(recs), header(recs[2], "_sender"))
	}
	// A user with no credential for this broker.
	r = walpubEnv(t, getenv, "x\n", "--journal", journal, "kafka://elsewhere@"+addr+"/alerts")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `hop: no matching credential for `+addr+` with username "elsewhere"`) {
		t.Errorf("no match: %s", r)
	}
	// --sasl wins; a URL user then makes no sense.
	r = walpubEnv(t, getenv, "x\n", "--journal", journal, "--sasl", "PLAIN:u:p", url)
	if r.code != ExitUsage || !strings.Contains(r.stderr, `the URL's user "alice" chooses a credential`) {
		t.Errorf("--sasl with a URL user: %s", r)
	}
}

// TestHopCredentialFileErrors: an auth.toml others may read is refused, as
// hop refuses it; --no-hop-auth ignores the file; without a file a URL
// user is an error.
func TestHopCredentialFileErrors(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "plain"))
	url := kfaketest.URL(c, "plain")
	getenv := hopHome(t, "[[auth]]\nusername = \"a\"\npassword = \"b\"\n", 0o644)
	journal := filepath.Join(t.TempDir(), "j")
	r := walpubEnv(t, getenv, "x\n", "--journal", journal, url)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "credential file has unsafe permissions") {
		t.Errorf("unsafe: %s", r)
	}
	r = walpubEnv(t, getenv, "x\n", "--journal", journal, "--no-hop-auth", url)
	if r.code != ExitOK {
		t.Errorf("--no-hop-auth: %s", r)
	}
	r = walpubEnv(t, func(string) string { return "" }, "x\n", "--journal", journal, strings.Replace(url, "kafka://", "kafka://someone@", 1))
	if r.code != ExitUsage || !strings.Contains(r.stderr, `the URL's user "someone" chooses a credential from hop's auth.toml, but there is none`) {
		t.Errorf("URL user without a file: %s", r)
	}
	// A credential without a hostname is for any broker, as in hop: here a
	// PLAIN one here (this broker has no SASL, so the records stay unconfirmed).
	getenv = hopHome(t, "[[auth]]\nusername = \"a\"\npassword = \"b\"\nprotocol = \"SASL_PLAINTEXT\"\nmechanism = \"PLAIN\"\n", 0o600)
	r = walpubEnv(t, getenv, "x\n", "--journal", journal, "--drain-timeout", "1s", url)
	if !strings.Contains(r.stderr, `hop credential "a" for `) || !strings.Contains(r.stderr, "(PLAIN)") {
		t.Errorf("any-host credential not used: %s", r)
	}
}

// testHopAuthRealBroker publishes to the SASL_SSL listener of
// scripts/kafka.sh (TLS with the script's CA, SCRAM-SHA-512) with the
// credential of an auth.toml such as `hop auth add` writes, as a hop user
// reaches Hopskotch; part of TestRealBroker.
func testHopAuthRealBroker(t *testing.T, topic string) {
	ssl, ca := os.Getenv("KAFKA_SSL_BROKERS"), os.Getenv("KAFKA_SSL_CA")
	if ssl == "" || ca == "" {
		t.Skip("KAFKA_SSL_BROKERS and KAFKA_SSL_CA are not set (scripts/kafka.sh env sets them)")
	}
	broker, _, _ := strings.Cut(ssl, ",")
	auth := fmt.Sprintf("[[auth]]\nusername = %q\npassword = %q\nhostname = %q\nprotocol = \"SASL_SSL\"\nmechanism = %q\nssl_ca_location = %q\n",
		os.Getenv("KAFKA_SCRAM_USER"), os.Getenv("KAFKA_SCRAM_PASSWORD"), broker,
		strings.ReplaceAll(os.Getenv("KAFKA_SCRAM_MECHANISM"), "-", "_"), ca)
	getenv := hopHome(t, auth, 0o600)
	r := walpubEnv(t, getenv, "{\"over\": \"sasl_ssl\"}\n", "--journal", filepath.Join(t.TempDir(), "j"),
		"--hop-format", "json", "--drain-timeout", "60s", "kafka://"+broker+"/"+topic)
	if r.code != ExitOK || !strings.Contains(r.stderr, "SCRAM-SHA-512 over TLS") {
		t.Fatal(r)
	}
	recs := readTopic(t, strings.Split(os.Getenv("KAFKA_BROKERS"), ","), topic)
	last := recs[len(recs)-1]
	if string(last.Value) != `{"over": "sasl_ssl"}` || string(header(last, "_sender")) != os.Getenv("KAFKA_SCRAM_USER") {
		t.Fatalf("last record %q, _sender %q", last.Value, header(last, "_sender"))
	}
	// The same credential without the CA: the broker's certificate is not
	// trusted, nothing is confirmed.
	auth = strings.Replace(auth, fmt.Sprintf("ssl_ca_location = %q\n", ca), "", 1)
	r = walpubEnv(t, hopHome(t, auth, 0o600), "untrusted\n", "--journal", filepath.Join(t.TempDir(), "j"),
		"--drain-timeout", "3s", "kafka://"+broker+"/"+topic)
	if r.code != ExitUnconfirmed || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without the CA: %s", r)
	}
}
