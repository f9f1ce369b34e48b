package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// events writes go test -json lines: each of evs is "action pkg test"
// (test may be empty, for a package event).
func events(evs ...string) string {
	var b strings.Builder
	for _, e := range evs {
		f := append(strings.Fields(e), "", "")
		b.WriteString(`{"Action":"` + f[0] + `","Package":"` + f[1] + `","Test":"` + f[2] + `"}` + "\n")
	}
	return b.String()
}

func TestRun(t *testing.T) {
	const mod = "example.com/m"
	for _, c := range []struct {
		name  string
		args  []string
		input string
		code  int
		say   string // in the output
	}{
		{"passes", nil, events("pass example.com/m/a TestA", "pass example.com/m/a"), 0, "tests: 1 passed, 0 failed, 0 skipped"},
		{"a failed test", nil, events("pass example.com/m/a TestA", "fail example.com/m/a TestB", "fail example.com/m/a"), 1, "1 passed, 1 failed"},
		{"a failed package, no failed test", nil, events("pass example.com/m/a TestA", "fail example.com/m/a"), 1, ""},
		{"a build failure", nil, events("pass example.com/m/a TestA", "build-fail example.com/m/b"), 1, ""},
		{"nothing ran", nil, events("skip example.com/m/a", "pass example.com/m/b"), 1, "0 tests passed, at least 1 must"},
		{"fewer than -min-passed", []string{"-min-passed", "2"}, events("pass example.com/m/a TestA"), 1, "1 tests passed, at least 2 must"},
		{"a skip, none allowed", nil, events("pass example.com/m/a TestA", "skip example.com/m/a TestB"), 1, "1 tests skipped that must run: a.TestB"},
		{"an allowed skip", []string{"-allow-skip", `a\.TestB|b\..*`}, events("pass example.com/m/a TestA", "skip example.com/m/a TestB", "skip example.com/m/b TestC"), 0, "1 passed, 0 failed, 2 skipped"},
		{"the allow-list matches whole names", []string{"-allow-skip", `a\.TestB`}, events("pass example.com/m/a TestA", "skip example.com/m/a TestBB", "skip example.com/m/xa TestB"), 1, "2 tests skipped that must run: a.TestBB xa.TestB"},
		{"a skipped subtest", []string{"-allow-skip", `a\.TestA`}, events("pass example.com/m/a TestA", "skip example.com/m/a TestA/sub"), 1, "must run: a.TestA/sub"},
		{"go's own messages pass through", nil, "go: downloading x\n" + events("pass example.com/m/a TestA"), 0, "go: downloading x\n"},
		{"a bad -allow-skip", []string{"-allow-skip", "("}, "", 2, ""},
		{"a cached result", nil, events("pass example.com/m/a TestA") + `{"Action":"output","Package":"example.com/m/a","Output":"ok  \texample.com/m/a\t(cached)\n"}` + "\n" + events("pass example.com/m/a"), 1, "1 packages replayed a cached result instead of running (go test -count=1): example.com/m/a"},
		{"a fresh result", nil, events("pass example.com/m/a TestA") + `{"Action":"output","Package":"example.com/m/a","Output":"ok  \texample.com/m/a\t0.012s\n"}` + "\n" + events("pass example.com/m/a"), 0, "ok  \texample.com/m/a\t0.012s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"-module", mod}, c.args...), strings.NewReader(c.input), &out, &errOut)
			if code != c.code || !strings.Contains(out.String(), c.say) {
				t.Errorf("exit %d, want %d; output %q, want it to say %q; stderr %q", code, c.code, out.String(), c.say, errOut.String())
			}
		})
	}
}

func TestCounts(t *testing.T) {
	counts := filepath.Join(t.TempDir(), "counts")
	in := events("pass example.com/m/a TestA", "skip example.com/m/a TestB", "fail example.com/m/a TestC")
	for range 2 {
		run([]string{"-counts", counts}, strings.NewReader(in), new(bytes.Buffer), new(bytes.Buffer))
	}
	got, err := os.ReadFile(counts)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "1 1 1\n1 1 1\n" {
		t.Fatalf("counts file %q", got)
	}
}
