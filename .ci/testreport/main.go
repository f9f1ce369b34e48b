// Command testreport reads `go test -json` on stdin and prints what plain
// `go test` would: the package lines (ok, FAIL, no test files), build
// errors, and the output of failed tests; with -v, the output of every
// test. It counts the tests that passed, failed and were skipped, prints
// them, and adds them to the file named by -counts (three numbers on one
// line, summed by .ci/run).
//
// It exits 1 if a test or a package failed, if a test whose name does not
// match -allow-skip skipped (its output is printed), if fewer than
// -min-passed tests passed, or if a package's result was replayed from the
// test cache ("ok pkg (cached)": go test without -count=1): a stage whose
// tests skip, that matched none, or that ran none, must not look green.
//
// It lives in .ci/ (a directory the go tool's ./... skips) and uses the
// standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command: it reads go test -json from stdin and returns the exit
// code (0 all is well, 1 a failure, an unexpected skip or too few passes, 2
// bad flags).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("testreport", flag.ContinueOnError)
	flags.SetOutput(stderr)
	verbose := flags.Bool("v", false, "print the output of every test, not only of failed ones")
	countsFile := flags.String("counts", "", "append `passed failed skipped` to this file")
	label := flags.String("label", "tests", "what to call the tests in the summary line")
	allowSkip := flags.String("allow-skip", "", "the tests allowed to skip: a `regexp` matching the whole of pkg.TestName (or pkg.TestName/subtest), pkg relative to -module; empty allows none")
	module := flags.String("module", "", "the module `path`, trimmed from package paths before -allow-skip is matched")
	minPassed := flags.Int("min-passed", 1, "fail unless at least `n` tests passed")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	var allowed *regexp.Regexp
	if *allowSkip != "" {
		var err error
		if allowed, err = regexp.Compile("^(?:" + *allowSkip + ")$"); err != nil {
			fmt.Fprintln(stderr, "testreport: -allow-skip:", err)
			return 2
		}
	}
	// name is how -allow-skip and the messages name a test.
	name := func(e event) string {
		pkg := strings.TrimPrefix(strings.TrimPrefix(e.Package, *module), "/")
		if pkg == "" {
			pkg = "."
		}
		return pkg + "." + e.Test
	}

	out := bufio.NewWriter(stdout)
	defer out.Flush()

	var passed, failed, skipped int
	var unexpectedSkips, cached []string
	failedPkgs := 0
	// Output of tests still running, kept until we know whether they failed.
	pending := map[string][]string{}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not JSON: go's own messages (e.g. a setup failure). Pass it on.
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failedPkgs++
		case "output":
			if e.Test == "" {
				// Package-level: ok/FAIL/? lines, PASS, coverage, panics.
				// The bare PASS/FAIL a verbose test binary prints is noise
				// next to the ok/FAIL line that follows it.
				if !*verbose && (e.Output == "PASS\n" || e.Output == "FAIL\n") {
					continue
				}
				if f := strings.Fields(e.Output); len(f) >= 3 && f[0] == "ok" && f[2] == "(cached)" {
					cached = append(cached, f[1])
				}
				fmt.Fprint(out, e.Output)
				continue
			}
			if *verbose {
				fmt.Fprint(out, e.Output)
				continue
			}
			if strings.HasPrefix(e.Output, "=== ") {
				continue
			}
			pending[key] = append(pending[key], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					failedPkgs++
				}
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				for _, o := range pending[key] {
					fmt.Fprint(out, o)
				}
			case "skip":
				skipped++
				if allowed == nil || !allowed.MatchString(name(e)) {
					unexpectedSkips = append(unexpectedSkips, name(e))
					for _, o := range pending[key] {
						fmt.Fprint(out, o)
					}
				}
			}
			delete(pending, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testreport: reading go test output:", err)
		failedPkgs++
	}

	fmt.Fprintf(out, "%s: %d passed, %d failed, %d skipped\n", *label, passed, failed, skipped)
	bad := failed > 0 || failedPkgs > 0
	if len(unexpectedSkips) > 0 {
		fmt.Fprintf(out, "%s: %d tests skipped that must run: %s\n", *label, len(unexpectedSkips), strings.Join(unexpectedSkips, " "))
		bad = true
	}
	if len(cached) > 0 {
		fmt.Fprintf(out, "%s: %d packages replayed a cached result instead of running (go test -count=1): %s\n", *label, len(cached), strings.Join(cached, " "))
		bad = true
	}
	if passed < *minPassed {
		fmt.Fprintf(out, "%s: %d tests passed, at least %d must\n", *label, passed, *minPassed)
		bad = true
	}
	if *countsFile != "" {
		f, err := os.OpenFile(*countsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "%d %d %d\n", passed, failed, skipped)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(out, "testreport:", err)
			bad = true
		}
	}
	if bad {
		return 1
	}
	return 0
}
