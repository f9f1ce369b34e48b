package hop

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Errors of the credential functions.
var (
	ErrNoCredential         = errors.New("hop: no matching credential")
	ErrAmbiguousCredential  = errors.New("hop: ambiguous credentials")
	ErrUnsafePermissions    = errors.New("hop: credential file has unsafe permissions")
	ErrInvalidAuth          = errors.New("hop: credential file is not configured correctly")
	ErrUnsupportedMechanism = errors.New("hop: SASL mechanism not supported")
)

// Credential is one entry of hop-client's auth.toml (the [[auth]]
// tables that `hop auth add` writes).
type Credential struct {
	Username string
	Password string
	// Hostname is the broker (host or host:port) the credential is for;
	// "" for any.
	Hostname string
	// Protocol is "SASL_PLAINTEXT" for a connection without TLS; anything
	// else ("SASL_SSL", the default) means TLS.
	Protocol string
	// Mechanism is the SASL mechanism as auth.toml names it; "" is hop's
	// default, SCRAM-SHA-512 (OAUTHBEARER with a token endpoint or
	// command). LoadAuth sets OAUTHBEARER for an entry with a
	// token_command key and no mechanism, as hop does, even for an empty
	// command.
	Mechanism string
	// SSLCALocation is a PEM file of the CAs to verify the broker with;
	// "" for the system's roots (hop: certifi's).
	SSLCALocation string
	TokenEndpoint string // OAUTHBEARER (OpenID Connect); not supported here
	TokenCommand  string // OAUTHBEARER (a command); not supported here
}

// TLS reports whether hop connects with this credential over TLS.
func (c Credential) TLS() bool { return c.Protocol != "SASL_PLAINTEXT" }

// SASLMechanism returns the credential's mechanism as the robust producer
// names it (kafka.WithSASL): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or an
// error wrapping ErrUnsupportedMechanism (GSSAPI, OAUTHBEARER).
func (c Credential) SASLMechanism() (string, error) {
	m := strings.ToUpper(strings.ReplaceAll(c.Mechanism, "_", "-"))
	switch {
	case m == "" && c.TokenEndpoint == "" && c.TokenCommand == "":
		return "SCRAM-SHA-512", nil
	case m == "":
		m = "OAUTHBEARER"
	}
	switch m {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		return m, nil
	}
	return "", fmt.Errorf("%w: %s (credential %q)", ErrUnsupportedMechanism, m, c.Username)
}

// AuthPath returns where hop-client looks for its credentials:
// $XDG_CONFIG_HOME/hop/auth.toml, or $HOME/.config/hop/auth.toml without
// XDG_CONFIG_HOME; "" when neither variable is set. getenv reads the
// environment (os.Getenv).
func AuthPath(getenv func(string) string) string {
	return configPath(getenv, "auth.toml")
}

func configPath(getenv func(string) string, name string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "hop", name)
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "hop", name)
	}
	return ""
}

// LoadDefaultAuth loads the credentials hop-client would use: those of
// AuthPath, or, when that file does not exist, the [auth] section of hop's
// general configuration (config.toml beside it), as older hop versions
// kept them. It returns the credentials and the file they came from, or no
// credentials, "" and a nil error when there is no such file.
func LoadDefaultAuth(getenv func(string) string) ([]Credential, string, error) {
	path := AuthPath(getenv)
	if path == "" {
		return nil, "", nil
	}
	creds, err := LoadAuth(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return creds, path, err
	}
	general := configPath(getenv, "config.toml")
	creds, err = LoadAuth(general)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoAuthSection) {
		return nil, "", nil
	}
	return creds, general, err
}

var errNoAuthSection = fmt.Errorf("%w: no auth section", ErrInvalidAuth)

// authEntry reads one [[auth]] table as hop does: by its keys exactly as
// written (TOML decoding into a struct would also take "Protocol" for
// "protocol", which hop ignores). It returns the credential, or why the
// table is not one.
func authEntry(t map[string]any) (Credential, string) {
	var c Credential
	for _, f := range []struct {
		key      string
		to       *string
		required bool
	}{
		{"username", &c.Username, true}, {"password", &c.Password, true},
		{"hostname", &c.Hostname, false}, {"protocol", &c.Protocol, false},
		{"mechanism", &c.Mechanism, false}, {"ssl_ca_location", &c.SSLCALocation, false},
		{"token_endpoint", &c.TokenEndpoint, false}, {"token_command", &c.TokenCommand, false},
	} {
		v, ok := t[f.key]
		if !ok {
			if f.required {
				return c, "lacks its " + f.key
			}
			continue
		}
		if *f.to, ok = v.(string); !ok {
			return c, fmt.Sprintf("has a %s that is not a string", f.key)
		}
	}
	if !c.TLS() {
		c.SSLCALocation = "" // hop ignores it without TLS
	}
	_, hasMechanism := t["mechanism"]
	if hasMechanism {
		// hop looks the name up among its SASLMethod names, '-' read as
		// '_', case mattering; any other fails its load_auth.
		switch strings.ReplaceAll(c.Mechanism, "-", "_") {
		case "PLAIN", "SCRAM_SHA_256", "SCRAM_SHA_512", "OAUTHBEARER":
		default:
			return c, fmt.Sprintf("has mechanism %q, which hop-client does not know: it takes PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, in upper case ('_' for '-' too)", c.Mechanism)
		}
	}
	if _, hasCommand := t["token_command"]; hasCommand && !hasMechanism {
		// hop tests for the key, not its value: an empty command too
		// makes an OAUTHBEARER credential, not a SCRAM one.
		c.Mechanism = "OAUTHBEARER"
	}
	return c, ""
}

// LoadAuth reads hop-client credentials from path, a TOML file whose
// "auth" key holds one table or an array of tables (username and password
// required; a mechanism, if given, one of hop's names: PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, upper case, '_' for '-'
// too; as in hop, one entry with another refuses the file). As hop does, it refuses a file that its group or others may
// access, or that has set-id or sticky bits (ErrUnsafePermissions).
func LoadAuth(path string) ([]Credential, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("hop: %w", err)
	}
	if perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); perm&0o077 != 0 || perm&^fs.ModePerm != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v; make it 0600", ErrUnsafePermissions, path, fi.Mode().Perm())
	}
	var raw struct {
		Auth toml.Primitive `toml:"auth"`
	}
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAuth, path, err)
	}
	if !md.IsDefined("auth") {
		return nil, fmt.Errorf("%w: %s", errNoAuthSection, path)
	}
	var entries []map[string]any
	if err := md.PrimitiveDecode(raw.Auth, &entries); err != nil {
		var one map[string]any
		if err2 := md.PrimitiveDecode(raw.Auth, &one); err2 != nil {
			return nil, fmt.Errorf("%w: %s: auth is neither a table nor an array of tables: %w", ErrInvalidAuth, path, err2)
		}
		entries = []map[string]any{one}
	}
	creds := make([]Credential, 0, len(entries))
	for i, e := range entries {
		c, bad := authEntry(e)
		if bad != "" {
			return nil, fmt.Errorf("%w: %s: auth entry %d %s", ErrInvalidAuth, path, i+1, bad)
		}
		creds = append(creds, c)
	}
	return creds, nil
}

// unquote decodes the %XX escapes of s as Python's urllib.parse.unquote
// does; net/url's unescaping refuses a bad escape, which hop keeps.
func unquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b = append(b, v[0])
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// hostPort splits a host, possibly with a port, as hop does (RFC 3986 host
// and port); a string that is not one gives "" and "".
var hostPortRE = regexp.MustCompile(`^([^\[:][^:]*|\[[^\]]+\])(:([0-9]+))?$`)

func splitHostPort(hp string) (host, port string, hasPort bool) {
	m := hostPortRE.FindStringSubmatch(hp)
	if m == nil {
		return "", "", false
	}
	return m[1], m[3], m[2] != ""
}

// SelectCredential picks the credential hop-client picks for a broker
// (host or host:port, the first broker of the URL) and, when user is not
// "", the user named in the URL (kafka://user@host/...): a credential whose
// hostname matches the broker (a missing port matches 9092) is preferred to
// one without a hostname; a credential for another host never matches. No
// match is ErrNoCredential, more than one ErrAmbiguousCredential (name the
// user in the URL to choose).
func SelectCredential(creds []Credential, broker, user string) (Credential, error) {
	const defaultPort = "9092"
	targetHost, targetPort, targetHasPort := splitHostPort(broker)
	var exact, inexact []Credential
	exactMatch, inexactMatch := false, false
	for _, c := range creds {
		maybeExact, maybeInexact := false, false
		if c.Hostname != "" {
			credHost, credPort, credHasPort := splitHostPort(c.Hostname)
			switch {
			case targetHasPort == credHasPort:
				if c.Hostname != broker {
					continue
				}
				maybeExact = true
			case credHost != targetHost:
				continue
			case targetPort == defaultPort || credPort == defaultPort:
				maybeExact = true
			}
		} else {
			maybeInexact = true
		}
		if user != "" && c.Username != user {
			continue
		}
		if maybeExact {
			exact = append(exact, c)
		} else if maybeInexact {
			inexact = append(inexact, c)
		}
		exactMatch = exactMatch || maybeExact
		inexactMatch = inexactMatch || maybeInexact
	}
	matches := exact
	if inexactMatch && !exactMatch {
		matches = inexact
	}
	who := ""
	if user != "" {
		who = fmt.Sprintf(" with username %q", user)
	}
	switch len(matches) {
	case 0:
		return Credential{}, fmt.Errorf("%w for %s%s", ErrNoCredential, broker, who)
	case 1:
		return matches[0], nil
	}
	var names []string
	for _, c := range matches {
		names = append(names, c.Username)
	}
	return Credential{}, fmt.Errorf("%w for %s%s: %s (name one in the URL: kafka://USER@%s/...)",
		ErrAmbiguousCredential, broker, who, strings.Join(names, ", "), broker)
}

// SplitURLUser splits the user of a hop-style URL (kafka://user@host/...,
// user percent-encoded; a ":password" after it is ignored, as hop ignores
// it) from the rest: it returns the user ("" without one) and the URL
// without it. As for hop, the user runs up to the last '@' before the
// first '/', '?' or '#' (kafka://a@b@host/... is user "a@b" at host).
// The user is unescaped as hop does (Python's urllib.parse.unquote): a
// '%' that does not start an escape of two hex digits is kept as it is,
// and escaped bytes that are not UTF-8 become U+FFFD; err is always nil.
func SplitURLUser(rawURL string) (user, rest string, err error) {
	scheme, after, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", rawURL, nil
	}
	// The authority ends at the first '/', '?' or '#', and the user at
	// its last '@', as urllib's netloc and username do (a user may hold a
	// raw '@').
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, tail := after[:end], after[end:]
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return "", rawURL, nil
	}
	u, _, _ := strings.Cut(authority[:at], ":") // a password in the URL is ignored, as hop ignores it
	return unquote(u), scheme + "://" + authority[at+1:] + tail, nil
}
