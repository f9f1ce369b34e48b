// Command peers measures walpub's wal and robust producer side by side with
// other Go write-ahead logs and with physical baselines, and writes the
// results as a Markdown report and an SVG chart.
//
//	cd benchmarks/peers && go run . -out ../RESULTS.md
//
// Every measurement runs in a fresh process (the command re-executes itself
// with -child) and a fresh directory, several times; the report gives the
// median with the min–max range, and the peak RSS of each child. See
// ../README.md for the flags and how to read the results.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// childResult is what a child prints as its last line of standard output.
type childResult struct {
	Records int64              `json:"records"`
	Bytes   int64              `json:"bytes"`
	Seconds float64            `json:"seconds"`
	Extra   map[string]float64 `json:"extra,omitempty"`
}

type config struct {
	Out, SVG, JSON, Load string
	Dir                  string
	Reps                 int
	Scale                float64
	MaxTime              time.Duration
	Quick                bool
	Impls, Workloads     string
	Sections             string
	CPUProfile           string
	ProducerRecords      int64
	Backlogs             string
	SettleMemory         bool
}

func main() {
	var cfg config
	var child, impl, workload, dir, broker, prof string
	var volume, expect int64
	var maxTime, hold time.Duration
	flag.StringVar(&cfg.Out, "out", "../RESULTS.md", "write the Markdown report here")
	flag.StringVar(&cfg.SVG, "svg", "", "write the chart here (default: results.svg beside -out)")
	flag.StringVar(&cfg.JSON, "json", "", "also save every measurement as JSON here")
	flag.StringVar(&cfg.Load, "load", "", "render the report from a -json file instead of measuring")
	flag.StringVar(&cfg.Dir, "dir", os.TempDir(), "parent of the temporary directories the logs are written in (its file system is what is measured)")
	flag.IntVar(&cfg.Reps, "reps", 5, "repetitions of every measurement")
	flag.Float64Var(&cfg.Scale, "scale", 1, "multiply every workload's byte volume by this")
	flag.DurationVar(&cfg.MaxTime, "maxtime", 2*time.Second, "stop a write run after this long (sync workloads: 3/4 of it)")
	flag.BoolVar(&cfg.Quick, "quick", false, "a ~2-3 minute run: -reps 2 -scale 0.125 -maxtime 0.5s, one backlog size")
	flag.StringVar(&cfg.Impls, "impls", "", "comma-separated implementations to run (default all)")
	flag.StringVar(&cfg.Workloads, "workloads", "", "comma-separated workloads to run (default all)")
	flag.StringVar(&cfg.Sections, "sections", "physical,wal,producer,memory", "which parts to run")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of every timed child into this directory")
	flag.Int64Var(&cfg.ProducerRecords, "producer-records", 500_000, "records per producer run (1 KiB each; runs also stop at -maxtime)")
	flag.StringVar(&cfg.Backlogs, "backlogs", "100000,1000000", "pending-record counts for the memory measurements")
	flag.BoolVar(&cfg.SettleMemory, "settle-memory", true, "on a VM that reports free memory to its host, stop that for the run and touch the free memory once first (as root; see vmmem.go)")
	flag.StringVar(&child, "child", "", "internal: run one measurement and print its result as JSON")
	flag.StringVar(&impl, "impl", "", "internal")
	flag.StringVar(&workload, "workload", "", "internal")
	flag.StringVar(&dir, "rundir", "", "internal")
	flag.StringVar(&broker, "broker", "", "internal")
	flag.StringVar(&prof, "prof", "", "internal")
	flag.Int64Var(&volume, "bytes", 0, "internal")
	flag.Int64Var(&expect, "expect", 0, "internal")
	flag.DurationVar(&maxTime, "limit", 0, "internal")
	flag.DurationVar(&hold, "hold", 0, "internal")
	flag.Parse()

	if child != "" {
		res, err := runChild(child, impl, workload, dir, broker, prof, volume, expect, maxTime, hold)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s %s %s: %v\n", child, impl, workload, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	if cfg.Quick {
		setIfUnset := func(name string, fn func()) {
			set := false
			flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
			if !set {
				fn()
			}
		}
		setIfUnset("reps", func() { cfg.Reps = 2 })
		setIfUnset("scale", func() { cfg.Scale = 0.125 })
		setIfUnset("maxtime", func() { cfg.MaxTime = 500 * time.Millisecond })
		setIfUnset("producer-records", func() { cfg.ProducerRecords = 200_000 })
		setIfUnset("backlogs", func() { cfg.Backlogs = "1000000" })
	}
	if cfg.SVG == "" {
		cfg.SVG = filepath.Join(filepath.Dir(cfg.Out), "results.svg")
	}
	if err := runParent(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func runChild(mode, impl, workload, dir, broker, prof string, volume, expect int64, maxTime, hold time.Duration) (*childResult, error) {
	switch mode {
	case "fdatasync":
		return runFdatasync(dir, int(volume), maxTime)
	case "xxhash":
		return runXxhash(maxTime)
	case "producer":
		return runProducer(impl, broker, dir, volume, maxTime, prof)
	case "touchmem":
		return touchMemory(volume)
	case "prodfill":
		if backlogFill == nil {
			return nil, errors.New("adapter/kafka is not built in")
		}
		return backlogFill(dir, expect)
	case "prodopen":
		if backlogOpen == nil {
			return nil, errors.New("adapter/kafka is not built in")
		}
		s := startSampler()
		res, err := backlogOpen(dir, hold)
		if err != nil {
			return nil, err
		}
		res.Extra = s.Stop(res.Extra)
		return res, nil
	}
	im, err := lookupImpl(impl)
	if err != nil {
		return nil, err
	}
	w, err := lookupWorkload(workload)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "run":
		if w.Replay {
			return runReplay(im, w, dir, expect, maxTime, prof)
		}
		return runWrite(im, w, dir, volume, maxTime, prof)
	case "setup":
		return runSetup(im, w, dir, volume)
	case "memreplay":
		s := startSampler()
		res, err := runReplay(im, w, dir, expect, 0, prof)
		if err != nil {
			return nil, err
		}
		res.Extra = s.Stop(res.Extra)
		return res, nil
	}
	return nil, fmt.Errorf("unknown child mode %q", mode)
}

// Run is one measurement, as the parent saw it.
type Run struct {
	Section  string       `json:"section"` // physical, wal, producer, memory
	Impl     string       `json:"impl"`
	Workload string       `json:"workload"`
	Rep      int          `json:"rep"`
	Res      *childResult `json:"res,omitempty"`
	MaxRSS   int64        `json:"maxrss"` // bytes, from the child's rusage
	Wall     float64      `json:"wall"`   // seconds the child lived
	Load     float64      `json:"load"`   // 1-minute load average when the child started
	Err      string       `json:"err,omitempty"`
}

// Suite is everything one invocation measured, plus the context the
// report prints.
type Suite struct {
	Config  config    `json:"config"`
	Env     Env       `json:"env"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Runs    []Run     `json:"runs"`
	Skipped []string  `json:"skipped"` // why something did not run
}

type runner struct {
	cfg  *config
	exe  string
	root string
	s    *Suite
	seq  int
}

func runParent(cfg *config) error {
	if cfg.Load != "" {
		b, err := os.ReadFile(cfg.Load)
		if err != nil {
			return err
		}
		var s Suite
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return writeOutputs(cfg, &s)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	root, err := os.MkdirTemp(cfg.Dir, "walpub-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, p := range []string{cfg.Out, cfg.SVG, cfg.JSON} {
		if p != "" {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
	}
	if cfg.CPUProfile != "" {
		if err := os.MkdirAll(cfg.CPUProfile, 0o755); err != nil {
			return err
		}
	}
	r := &runner{cfg: cfg, exe: exe, root: root, s: &Suite{Config: *cfg, Start: time.Now()}}
	r.s.Env = collectEnv(root)
	if cfg.SettleMemory {
		note, restore := settleMemory(reportingOrderPath, func(n int64) (time.Duration, error) {
			run := r.child(Run{Section: "setup"}, "touchmem", "-bytes", strconv.FormatInt(n, 10))
			if run.Err != "" {
				return 0, errors.New(run.Err)
			}
			return time.Duration(run.Wall * float64(time.Second)), nil
		})
		defer restore()
		defer restoreOnSignal(restore)()
		r.s.Env.GuestMemory = note
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(cfg.Sections, ",") {
		sections[strings.TrimSpace(s)] = true
	}
	if _, ok := impls["walpub"]; !ok {
		r.s.Skipped = append(r.s.Skipped, "walpub's wal was not built in (built with -tags nowalpub)")
	}
	if sections["physical"] {
		r.physical()
	}
	if sections["wal"] {
		r.wal()
	}
	if sections["producer"] {
		r.producer()
	}
	if sections["memory"] {
		r.memory()
	}
	r.s.End = time.Now()
	if cfg.JSON != "" {
		b, _ := json.MarshalIndent(r.s, "", "  ")
		if err := os.WriteFile(cfg.JSON, b, 0o644); err != nil {
			return err
		}
	}
	return writeOutputs(cfg, r.s)
}

func writeOutputs(cfg *config, s *Suite) error {
	if err := os.WriteFile(cfg.SVG, []byte(renderSVG(s)), 0o644); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(cfg.Out), cfg.SVG)
	if err != nil {
		rel = cfg.SVG
	}
	if err := os.WriteFile(cfg.Out, []byte(renderReport(s, rel)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s (%s)\n", cfg.Out, cfg.SVG, s.End.Sub(s.Start).Round(time.Second))
	return nil
}

// child runs one child process and records it.
func (r *runner) child(run Run, args ...string) Run {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.exe, append([]string{"-child"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	run.Load = loadAvg()
	start := time.Now()
	err := cmd.Run()
	run.Wall = time.Since(start).Seconds()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			run.MaxRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = msg[:400] + "…"
		}
		run.Err = fmt.Sprintf("%v: %s", err, msg)
		return run
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res childResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		run.Err = fmt.Sprintf("bad child output: %v", err)
		return run
	}
	run.Res = &res
	return run
}

func (r *runner) record(run Run) {
	r.s.Runs = append(r.s.Runs, run)
	status := ""
	switch {
	case run.Err != "":
		status = "ERROR " + run.Err
	case run.Res != nil && run.Res.Seconds > 0:
		status = fmt.Sprintf("%.3g rec/s  %.0f MB/s  %.2fs  rss %d MiB",
			float64(run.Res.Records)/run.Res.Seconds, float64(run.Res.Bytes)/run.Res.Seconds/1e6,
			run.Res.Seconds, run.MaxRSS>>20)
	default:
		status = fmt.Sprintf("rss %d MiB", run.MaxRSS>>20)
	}
	fmt.Fprintf(os.Stderr, "[%s] %-8s %-20s %-20s #%d  %s\n",
		time.Since(r.s.Start).Round(time.Second), run.Section, run.Impl, run.Workload, run.Rep+1, status)
}

func (r *runner) tempDir() string {
	r.seq++
	d := filepath.Join(r.root, "run-"+strconv.Itoa(r.seq))
	if err := os.Mkdir(d, 0o700); err != nil {
		panic(err)
	}
	return d
}

func (r *runner) profArg(name string, rep int) []string {
	if r.cfg.CPUProfile == "" {
		return nil
	}
	clean := strings.NewReplacer("/", "_", "+", "_").Replace(name)
	return []string{"-prof", filepath.Join(r.cfg.CPUProfile, fmt.Sprintf("%s.%d.prof", clean, rep+1))}
}

func selected(list, name string) bool {
	if list == "" {
		return true
	}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

func (r *runner) physical() {
	for rep := range r.cfg.Reps {
		d := r.tempDir()
		r.record(r.child(Run{Section: "physical", Impl: "fdatasync", Workload: "write4KiB+fdatasync", Rep: rep},
			"fdatasync", "-rundir", d, "-bytes", "2000", "-limit", r.cfg.MaxTime.String()))
		r.remove(d)
		r.record(r.child(Run{Section: "physical", Impl: "xxhash", Workload: "hash", Rep: rep},
			"xxhash", "-limit", r.cfg.MaxTime.String()))
	}
}

func (r *runner) wal() {
	for _, w := range workloads {
		if !selected(r.cfg.Workloads, w.Name) {
			continue
		}
		volume := int64(float64(w.Bytes) * r.cfg.Scale)
		volume -= volume % (100 * int64(w.Size))
		if volume < 100*int64(w.Size) {
			volume = 100 * int64(w.Size)
		}
		limit := time.Duration(float64(r.cfg.MaxTime) * w.MaxTime)
		for rep := range r.cfg.Reps {
			for _, im := range implOrder() {
				if !im.supports(w) || !selected(r.cfg.Impls, im.Name) {
					continue
				}
				run := Run{Section: "wal", Impl: im.Name, Workload: w.Name, Rep: rep}
				d := r.tempDir()
				prof := r.profArg(im.Name+"."+w.Name, rep)
				if w.Replay {
					setup := r.child(run, "setup", "-impl", im.Name, "-workload", w.Name, "-rundir", d,
						"-bytes", strconv.FormatInt(volume, 10))
					if setup.Err != "" {
						setup.Err = "setup: " + setup.Err
						r.record(setup)
						r.remove(d)
						continue
					}
					run = r.child(run, append([]string{"run", "-impl", im.Name, "-workload", w.Name, "-rundir", d,
						"-expect", strconv.FormatInt(setup.Res.Records, 10), "-limit", limit.String()}, prof...)...)
				} else {
					run = r.child(run, append([]string{"run", "-impl", im.Name, "-workload", w.Name, "-rundir", d,
						"-bytes", strconv.FormatInt(volume, 10), "-limit", limit.String()}, prof...)...)
				}
				r.record(run)
				r.remove(d)
			}
		}
	}
}

// remove deletes a run's directory and syncs the file system, so that the
// journal commit of the deletion (with its discards, on a file system
// mounted with -o discard) is not paid by the next timed run.
func (r *runner) remove(d string) {
	os.RemoveAll(d)
	if f, err := os.Open(r.root); err == nil {
		unix.Syncfs(int(f.Fd()))
		f.Close()
	}
}

func (r *runner) producer() {
	brokers := []string{"kfake"}
	if os.Getenv("KAFKA_BROKERS") != "" {
		brokers = append(brokers, "real")
	} else {
		r.s.Skipped = append(r.s.Skipped, "producer against a real broker: KAFKA_BROKERS is not set")
	}
	if _, ok := producers["walpub"]; !ok {
		r.s.Skipped = append(r.s.Skipped, "robust producer: adapter/kafka was not built in (built with -tags noadapter)")
	}
	names := []string{"kgo", journalCeiling, "walpub"}
	for _, b := range brokers {
		for rep := range r.cfg.Reps {
			for _, name := range names {
				if _, ok := producers[name]; !ok {
					continue
				}
				d := r.tempDir()
				run := r.child(Run{Section: "producer", Impl: name, Workload: b, Rep: rep},
					append([]string{"producer", "-impl", name, "-broker", b, "-rundir", d,
						"-bytes", strconv.FormatInt(r.cfg.ProducerRecords, 10), "-limit", r.cfg.MaxTime.String()},
						r.profArg("producer-"+name+"-"+b, rep)...)...)
				r.record(run)
				r.remove(d)
			}
		}
	}
}

func (r *runner) memory() {
	var counts []int64
	for _, s := range strings.Split(r.cfg.Backlogs, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err == nil && n > 0 {
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		label := fmt.Sprintf("backlog-%d", n)
		if _, ok := impls["walpub"]; ok {
			d := r.tempDir()
			setup := r.child(Run{Section: "memory", Impl: "walpub", Workload: label}, "setup", "-impl", "walpub",
				"-workload", "replay-1KiB", "-rundir", d, "-bytes", strconv.FormatInt(n*kib, 10))
			if setup.Err != "" {
				setup.Err = "setup: " + setup.Err
				r.record(setup)
			} else {
				r.record(r.child(Run{Section: "memory", Impl: "walpub", Workload: label}, "memreplay", "-impl", "walpub",
					"-workload", "replay-1KiB", "-rundir", d, "-expect", strconv.FormatInt(setup.Res.Records, 10)))
			}
			r.remove(d)
		}
		if backlogFill != nil {
			d := r.tempDir()
			fill := r.child(Run{Section: "memory", Impl: "producer", Workload: label}, "prodfill", "-rundir", d,
				"-expect", strconv.FormatInt(n, 10))
			if fill.Err != "" {
				fill.Err = "fill: " + fill.Err
				r.record(fill)
			} else {
				r.record(r.child(Run{Section: "memory", Impl: "producer", Workload: label}, "prodopen", "-rundir", d,
					"-hold", "3s"))
			}
			r.remove(d)
		}
	}
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
