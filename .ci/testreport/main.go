// Command testreport reads `go test -json` on stdin and prints what plain
// `go test` would: the package lines (ok, FAIL, no test files), build
// errors, and the output of failed tests; with -v, the output of every
// test. It counts the tests that passed, failed and were skipped, prints
// them, and adds them to the file named by -counts (three numbers on one
// line, summed by .ci/run). It exits 1 if a test or a package failed.
//
// It lives in .ci/ (a directory the go tool's ./... skips) and uses the
// standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
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
	verbose := flag.Bool("v", false, "print the output of every test, not only of failed ones")
	countsFile := flag.String("counts", "", "append `passed failed skipped` to this file")
	label := flag.String("label", "tests", "what to call the tests in the summary line")
	flag.Parse()

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()

	var passed, failed, skipped int
	failedPkgs := 0
	// Output of tests still running, kept until we know whether they failed.
	pending := map[string][]string{}
	sc := bufio.NewScanner(os.Stdin)
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
			}
			delete(pending, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testreport: reading go test output:", err)
		failedPkgs++
	}

	fmt.Fprintf(out, "%s: %d passed, %d failed, %d skipped\n", *label, passed, failed, skipped)
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
			failedPkgs++
		}
	}
	out.Flush()
	if failed > 0 || failedPkgs > 0 {
		os.Exit(1)
	}
}
