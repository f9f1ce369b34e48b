package hop

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSelectCredential: for every case of testdata/auth_cases.json, the
// credential hop-client's own select_matching_auth picked (or its error).
func TestSelectCredential(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "auth_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Credentials []struct{ Username, Hostname string }
		Sets        map[string][]string
		Cases       []struct {
			Set, Broker, User string
			Picks, Error      *string
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Credential{}
	for _, c := range f.Credentials {
		byName[c.Username] = Credential{Username: c.Username, Password: "pw-" + c.Username, Hostname: c.Hostname}
	}
	picked := 0
	for _, tc := range f.Cases {
		var creds []Credential
		for _, n := range f.Sets[tc.Set] {
			creds = append(creds, byName[n])
		}
		c, err := SelectCredential(creds, tc.Broker, tc.User)
		switch {
		case tc.Picks != nil:
			picked++
			if err != nil || c.Username != *tc.Picks {
				t.Errorf("%s, broker %s, user %q: picked %q (%v); hop picks %s", tc.Set, tc.Broker, tc.User, c.Username, err, *tc.Picks)
			}
		case *tc.Error == "ambiguous":
			if !errors.Is(err, ErrAmbiguousCredential) {
				t.Errorf("%s, broker %s, user %q: picked %q (%v); hop finds it ambiguous", tc.Set, tc.Broker, tc.User, c.Username, err)
			}
		default:
			if !errors.Is(err, ErrNoCredential) {
				t.Errorf("%s, broker %s, user %q: picked %q (%v); hop finds none", tc.Set, tc.Broker, tc.User, c.Username, err)
			}
		}
	}
	if picked == 0 || len(f.Cases) < 100 {
		t.Fatalf("%d cases, %d with a pick", len(f.Cases), picked)
	}
}

func writeAuth(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// hopAuthFile is auth.toml as `hop auth add` writes it.
const hopAuthFile = `
[[auth]]
username = "alice"
password = "secret"
hostname = "kafka.scimma.org"
protocol = "SASL_SSL"
mechanism = "SCRAM_SHA_512"
ssl_ca_location = "/etc/ca.pem"

[[auth]]
username = "local"
password = "p:w"
protocol = "SASL_PLAINTEXT"
mechanism = "SCRAM-SHA-256"
ssl_ca_location = "/ignored.pem"
`

func TestLoadAuth(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.toml")
	writeAuth(t, p, hopAuthFile, 0o600)
	creds, err := LoadAuth(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Credential{
		{Username: "alice", Password: "secret", Hostname: "kafka.scimma.org", Protocol: "SASL_SSL", Mechanism: "SCRAM_SHA_512", SSLCALocation: "/etc/ca.pem"},
		{Username: "local", Password: "p:w", Protocol: "SASL_PLAINTEXT", Mechanism: "SCRAM-SHA-256"},
	}
	if len(creds) != 2 || creds[0] != want[0] || creds[1] != want[1] {
		t.Fatalf("LoadAuth:\n%+v\nwant\n%+v", creds, want)
	}
	if !creds[0].TLS() || creds[1].TLS() {
		t.Error("TLS")
	}
	for _, tc := range []struct {
		c    Credential
		mech string
	}{
		{creds[0], "SCRAM-SHA-512"}, {creds[1], "SCRAM-SHA-256"}, {Credential{}, "SCRAM-SHA-512"},
		{Credential{Mechanism: "plain"}, "PLAIN"},
	} {
		if m, err := tc.c.SASLMechanism(); err != nil || m != tc.mech {
			t.Errorf("%+v: mechanism %q, %v", tc.c, m, err)
		}
	}
	for _, c := range []Credential{{Mechanism: "GSSAPI"}, {TokenEndpoint: "https://x/token"}, {Mechanism: "OAUTHBEARER"}} {
		if _, err := c.SASLMechanism(); !errors.Is(err, ErrUnsupportedMechanism) {
			t.Errorf("%+v: %v", c, err)
		}
	}

	// The old single-table form.
	writeAuth(t, p, "[auth]\nusername = \"bob\"\npassword = \"pw\"\n", 0o600)
	if creds, err := LoadAuth(p); err != nil || len(creds) != 1 || creds[0].Username != "bob" || !creds[0].TLS() {
		t.Errorf("single table: %+v, %v", creds, err)
	}
	for _, tc := range []struct {
		text string
		mode os.FileMode
		err  error
	}{
		{hopAuthFile, 0o644, ErrUnsafePermissions},
		{hopAuthFile, 0o640, ErrUnsafePermissions},
		{"[[auth]]\nusername = \"x\"\n", 0o600, ErrInvalidAuth},
		{"[[auth]\n", 0o600, ErrInvalidAuth},
		{"[other]\nx = 1\n", 0o600, ErrInvalidAuth},
		{"auth = 5\n", 0o600, ErrInvalidAuth},
	} {
		writeAuth(t, p, tc.text, tc.mode)
		if _, err := LoadAuth(p); !errors.Is(err, tc.err) {
			t.Errorf("%q mode %v: %v, want %v", tc.text, tc.mode, err, tc.err)
		}
	}
}

// TestLoadAuthKeyCase: hop reads the keys of auth.toml as written
// (config["protocol"], ...), so a key spelt with other capitals is not
// that setting: with `Protocol = "SASL_PLAINTEXT"` hop-client 0.13.0
// still connects over TLS, `Hostname` leaves the credential for any
// host, `Mechanism` leaves SCRAM-SHA-512; a `Username` alone is a
// credential without its username.
func TestLoadAuthKeyCase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.toml")
	writeAuth(t, p, "[[auth]]\nusername = \"a\"\npassword = \"p\"\nProtocol = \"SASL_PLAINTEXT\"\nHostname = \"h:9092\"\nMechanism = \"PLAIN\"\n", 0o600)
	creds, err := LoadAuth(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Credential{Username: "a", Password: "p"}
	if len(creds) != 1 || creds[0] != want {
		t.Fatalf("LoadAuth: %+v; want %+v", creds, want)
	}
	if m, err := creds[0].SASLMechanism(); !creds[0].TLS() || m != "SCRAM-SHA-512" || err != nil {
		t.Errorf("TLS %v, mechanism %s, %v; hop uses SCRAM-SHA-512 over TLS", creds[0].TLS(), m, err)
	}
	writeAuth(t, p, "[[auth]]\nUsername = \"a\"\npassword = \"p\"\n", 0o600)
	if creds, err := LoadAuth(p); !errors.Is(err, ErrInvalidAuth) {
		t.Errorf("Username for username: %+v, %v; want ErrInvalidAuth", creds, err)
	}
}

func TestLoadDefaultAuth(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	getenv := func(k string) string { return env[k] }
	if AuthPath(func(string) string { return "" }) != "" {
		t.Error("AuthPath without HOME")
	}
	if got := AuthPath(getenv); got != filepath.Join(home, ".config", "hop", "auth.toml") {
		t.Errorf("AuthPath = %s", got)
	}
	creds, path, err := LoadDefaultAuth(getenv)
	if creds != nil || path != "" || err != nil {
		t.Errorf("no file: %v %q %v", creds, path, err)
	}
	// Older hop kept the credentials in config.toml.
	general := filepath.Join(home, ".config", "hop", "config.toml")
	writeAuth(t, general, "[auth]\nusername = \"old\"\npassword = \"pw\"\n", 0o600)
	if creds, path, err = LoadDefaultAuth(getenv); err != nil || path != general || len(creds) != 1 || creds[0].Username != "old" {
		t.Errorf("config.toml: %v %q %v", creds, path, err)
	}
	writeAuth(t, general, "fetch_external = true\n", 0o600)
	if creds, path, err = LoadDefaultAuth(getenv); creds != nil || path != "" || err != nil {
		t.Errorf("config.toml without auth: %v %q %v", creds, path, err)
	}
	// XDG_CONFIG_HOME first.
	xdg := t.TempDir()
	env["XDG_CONFIG_HOME"] = xdg
	writeAuth(t, filepath.Join(xdg, "hop", "auth.toml"), hopAuthFile, 0o600)
	if creds, path, err = LoadDefaultAuth(getenv); err != nil || path != filepath.Join(xdg, "hop", "auth.toml") || len(creds) != 2 {
		t.Errorf("XDG: %v %q %v", creds, path, err)
	}
	writeAuth(t, filepath.Join(xdg, "hop", "auth.toml"), hopAuthFile, 0o604)
	if _, _, err = LoadDefaultAuth(getenv); !errors.Is(err, ErrUnsafePermissions) {
		t.Errorf("unsafe: %v", err)
	}
}

func TestSplitURLUser(t *testing.T) {
	for _, tc := range []struct{ in, user, rest string }{
		{"kafka://kafka.scimma.org/alerts", "", "kafka://kafka.scimma.org/alerts"},
		{"kafka://alice@kafka.scimma.org/alerts", "alice", "kafka://kafka.scimma.org/alerts"},
		{"kafka://a%40b@h:9092,h2:9092/t", "a@b", "kafka://h:9092,h2:9092/t"},
		{"kafka://alice:pw@h", "alice", "kafka://h"},
	} {
		user, rest, err := SplitURLUser(tc.in)
		if err != nil || user != tc.user || rest != tc.rest {
			t.Errorf("SplitURLUser(%s) = %q, %q, %v", tc.in, user, rest, err)
		}
	}
}

// TestSplitURLUserAsHop: the user of a URL is read as hop-client 0.13.0
// reads it (adc's parse_kafka_url, then urllib's unquote; each case was
// run through them): a '%' that does not start an escape of two hex
// digits stays as it is, escaped bytes that are not UTF-8 become U+FFFD,
// and an empty user ("kafka://@host", "kafka://:pw@host") is no user.
// SplitURLUser refused a bad escape, so walpub refused URLs hop takes.
func TestSplitURLUserAsHop(t *testing.T) {
	for _, tc := range []struct{ in, user, rest string }{
		{"kafka://al%ZZice@host/t", "al%ZZice", "kafka://host/t"},
		{"kafka://al%2xice@host/t", "al%2xice", "kafka://host/t"},
		{"kafka://al%ice@host/t", "al%ice", "kafka://host/t"},
		{"kafka://%@host/t", "%", "kafka://host/t"},
		{"kafka://al%C3%A9@host/t", "alé", "kafka://host/t"},
		{"kafka://al%FFx@host/t", "al\uFFFDx", "kafka://host/t"},
		{"kafka://a+b@host/t", "a+b", "kafka://host/t"},
		{"kafka://@host/t", "", "kafka://host/t"},
		{"kafka://:pw@host/t", "", "kafka://host/t"},
	} {
		user, rest, err := SplitURLUser(tc.in)
		if err != nil || user != tc.user || rest != tc.rest {
			t.Errorf("SplitURLUser(%s) = %q, %q, %v; hop reads user %q", tc.in, user, rest, err, tc.user)
		}
	}
}

// TestSplitURLUserAtSignAsHop: a user holding a raw '@' runs up to the
// last '@' of the authority, as hop-client 0.13.0 reads it (adc's
// parse_kafka_url takes urllib's username, which splits at the last '@';
// each user below is what it gave), and the authority ends at the first
// '/', '?' or '#', as urllib's does. The brokers are those after that
// '@', urllib's host and port: hop's own broker split is at the first
// '@' ("b@host"), a broker no client can reach. SplitURLUser split at the
// first '@' of everything before the first '/', so "kafka://a@b@host"
// gave user "a" and a rest walpub refused as credentials in the URL, and
// "kafka://host?x@y/t" user "host?x" and broker y, where hop reads host.
func TestSplitURLUserAtSignAsHop(t *testing.T) {
	for _, tc := range []struct{ in, user, rest string }{
		{"kafka://a@b@host/t", "a@b", "kafka://host/t"},
		{"kafka://a@b@host:9092,h2:9093/t", "a@b", "kafka://host:9092,h2:9093/t"},
		{"kafka://a@b@c@host/t", "a@b@c", "kafka://host/t"},
		{"kafka://a:pw@b@host/t", "a", "kafka://host/t"},
		{"kafka://a@b:pw@host/t", "a@b", "kafka://host/t"},
		{"kafka://user%40ex.org@host/t", "user@ex.org", "kafka://host/t"},
		{"kafka://a@b@host", "a@b", "kafka://host"},
		{"kafka://a@b@[::1]:9092/t", "a@b", "kafka://[::1]:9092/t"},
		{"kafka://a@host/t@x", "a", "kafka://host/t@x"},
		{"kafka://host?x@y/t", "", "kafka://host?x@y/t"},
		{"kafka://host#x@y/t", "", "kafka://host#x@y/t"},
	} {
		user, rest, err := SplitURLUser(tc.in)
		if err != nil || user != tc.user || rest != tc.rest {
			t.Errorf("SplitURLUser(%s) = %q, %q, %v; want %q, %q", tc.in, user, rest, err, tc.user, tc.rest)
		}
	}
}
