package hop

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadAuthTokenCommandEmpty: a credential with a token_command key
// and no mechanism is an OAUTHBEARER credential for hop-client 0.13.0
// even when the command is "" (it tests for the key, not its value), so
// SASLMechanism refuses it as unsupported, as for any token command. It
// returned SCRAM-SHA-512: walpub authenticated with the password where
// hop would not. An empty token_endpoint is no endpoint, for hop as here.
func TestLoadAuthTokenCommandEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.toml")
	for _, tc := range []struct {
		extra string
		mech  string // "" for unsupported (OAUTHBEARER)
	}{
		{`token_command = ""`, ""},
		{`token_command = "get-token"`, ""},
		{`token_endpoint = ""`, "SCRAM-SHA-512"},
		{"token_command = \"\"\nmechanism = \"PLAIN\"", "PLAIN"},
	} {
		writeAuth(t, p, "[[auth]]\nusername = \"u\"\npassword = \"p\"\n"+tc.extra+"\n", 0o600)
		creds, err := LoadAuth(p)
		if err != nil || len(creds) != 1 {
			t.Fatalf("%s: LoadAuth: %+v, %v", tc.extra, creds, err)
		}
		m, err := creds[0].SASLMechanism()
		switch {
		case tc.mech == "" && (!errors.Is(err, ErrUnsupportedMechanism) || !strings.Contains(err.Error(), "OAUTHBEARER")):
			t.Errorf("%s: mechanism %q, %v; hop uses OAUTHBEARER", tc.extra, m, err)
		case tc.mech != "" && (err != nil || m != tc.mech):
			t.Errorf("%s: mechanism %q, %v; hop uses %s", tc.extra, m, err, tc.mech)
		}
	}
}

// TestLoadAuthMechanismNames: hop-client 0.13.0 looks an entry's
// mechanism up among its SASLMethod names, PLAIN, SCRAM_SHA_256,
// SCRAM_SHA_512 and OAUTHBEARER, with '-' read as '_' and case
// mattering; any other value (lower case, GSSAPI, "") fails hop's
// load_auth (KeyError) for the whole file, whichever entry has it. So
// LoadAuth refuses the file with ErrInvalidAuth, naming the entry and the
// mechanism. It took lower case names (and an unknown one unless its
// credential was picked), using credentials hop refuses to.
func TestLoadAuthMechanismNames(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth.toml")
	for _, tc := range []struct {
		mech string
		ok   bool
	}{
		{"PLAIN", true}, {"SCRAM_SHA_256", true}, {"SCRAM-SHA-256", true}, {"SCRAM-SHA-512", true}, {"OAUTHBEARER", true},
		{"scram-sha-512", false}, {"plain", false}, {"Scram-Sha-256", false}, {"GSSAPI", false}, {"", false}, {"bogus", false},
	} {
		// The entry with the mechanism is not the one a broker would pick.
		writeAuth(t, p, "[[auth]]\nusername = \"u\"\npassword = \"p\"\n[[auth]]\nusername = \"v\"\npassword = \"q\"\nhostname = \"elsewhere\"\nmechanism = \""+tc.mech+"\"\n", 0o600)
		creds, err := LoadAuth(p)
		if tc.ok != (err == nil) || !tc.ok && (!errors.Is(err, ErrInvalidAuth) || !strings.Contains(err.Error(), "auth entry 2") || !strings.Contains(err.Error(), `"`+tc.mech+`"`)) {
			t.Errorf("mechanism %q: LoadAuth: %d credentials, %v; hop takes it: %v", tc.mech, len(creds), err, tc.ok)
		}
	}
}
