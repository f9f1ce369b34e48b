package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// target is one row of the DESIGN.md "Speed targets" table.
type target struct {
	Goal     string
	Ours     float64
	Ref      float64
	RefName  string
	Unit     string // "rec/s", "MB/s", "MiB"
	Need     float64
	AtMost   bool // Need is an upper bound on Ours (memory)
	Measured bool
	// CPU is the ratio of payload bytes per CPU-second (all threads of the
	// child), which a busy machine distorts less than wall-clock time; NaN
	// where it does not apply.
	CPU float64
	// Ceiling is the most a writer reached in the same run where it bounds
	// this target (see ceiling in targets), in Unit; 0 or NaN where none
	// applies. A goal that asks for more than the ceiling cannot be met
	// on this machine.
	Ceiling     float64
	CeilingName string
	// Sealed is what the buffered file reached with the device writes of
	// walpub's power-cut bound (sealedBaseline), in Unit; 0 or NaN where
	// not measured. The verdict names it where it is below the goal and
	// not the ceiling: walpub ahead of it is ahead of the buffered file
	// doing the work walpub's guarantee needs.
	Sealed float64
}

// aboveCeiling reports whether the goal asks for more than the physical
// ceiling measured in the same run. A bound walpub exceeds bounds nothing
// and explains no miss (see beyondCeiling).
func (t target) aboveCeiling() bool {
	return t.Measured && !t.AtMost && t.Ceiling > 0 && t.Need*t.Ref > t.Ceiling && t.Ours <= t.Ceiling
}

// beyondCeiling reports whether walpub exceeds the bound named as the
// target's ceiling (the highest bound measured, when walpub exceeds them
// all): a miss then has no measured limit to explain it.
func (t target) beyondCeiling() bool {
	return t.Measured && !t.AtMost && t.Ceiling > 0 && t.Ours > t.Ceiling
}

func (t target) ratio() float64 { return t.Ours / t.Ref }

func (t target) verdict() string {
	if !t.Measured {
		return "not measured"
	}
	if t.AtMost {
		if t.Ours <= t.Need {
			return "**met**"
		}
		return fmt.Sprintf("**missed** (%.2fx over)", t.Ours/t.Need)
	}
	r := t.ratio()
	if r >= t.Need {
		return "**met**"
	}
	v := fmt.Sprintf("**missed** (%.0f%% short)", 100*(1-r/t.Need))
	if t.aboveCeiling() {
		v += fmt.Sprintf("; the goal, %s, is above the ceiling measured in this run: %s reached %s (walpub %.2fx of it)",
			fmtVal(t.Need*t.Ref, t.Unit), t.CeilingName, fmtVal(t.Ceiling, t.Unit), t.Ours/t.Ceiling)
	} else if t.beyondCeiling() {
		v += fmt.Sprintf("; not explained by a limit measured in this run: walpub is above every bound measured, the highest being %s, which reached %s (walpub %.2fx of it)",
			strings.TrimSuffix(t.CeilingName, ","), fmtVal(t.Ceiling, t.Unit), t.Ours/t.Ceiling)
	}
	if t.Sealed > 0 && t.Need*t.Ref > t.Sealed && !strings.Contains(t.CeilingName, sealedBaseline) {
		v += fmt.Sprintf("; the goal is above what the buffered file reached with the device writes of walpub's power-cut bound under SyncNever (%s: %s; walpub %.2fx of it)",
			sealedBaseline, fmtVal(t.Sealed, t.Unit), t.Ours/t.Sealed)
	}
	return v
}

// safeBaselines are the baselines whose records are in the page cache
// when the call that wrote them returns, as walpub's are.
var safeBaselines = []string{"bufio+xxhash/batch", "mmap+xxhash"}

// sealedBaseline is the buffered file with the device writes of walpub's
// power-cut bound under SyncNever.
const sealedBaseline = "bufio+xxhash/sealed"

// replayCeiling is the baseline that verifies every record twice on
// replay, as walpub must (DESIGN.md: Open verifies every live record,
// Pending every record it returns).
const replayCeiling = "bufio+xxhash/2pass"

func peerNames() []string {
	var out []string
	for _, im := range implOrder() {
		if im.Kind == "peer" {
			out = append(out, im.Name)
		}
	}
	return out
}

func targets(s *Suite, ag map[aggKey]*agg) []target {
	med := func(impl, wl string, rec bool) float64 {
		a := ag[aggKey{"wal", impl, wl}]
		if a == nil {
			return math.NaN()
		}
		if rec {
			return a.RecPS.Med
		}
		return a.MBPS.Med
	}
	bestPeer := func(wl string, rec bool) (float64, string) {
		best, name := math.NaN(), ""
		for _, p := range peerNames() {
			v := med(p, wl, rec)
			if !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
				best, name = v, p
			}
		}
		return best, name
	}
	cpu := func(impl, wl string) float64 {
		if a := ag[aggKey{"wal", impl, wl}]; a != nil {
			if st, ok := a.Extra["mb_per_cpu_s"]; ok {
				return st.Med
			}
		}
		return math.NaN()
	}
	// ceiling is the lowest of the bounds measured in the run that walpub
	// (ours) does not exceed: what the fastest writer that keeps every
	// returned record safe from kill -9 reached on the workload (walpub's
	// guarantee: the baselines that write each batch out, or store into a
	// shared mapping); what the buffered file reached with the device
	// writes that walpub's other guarantee costs (under SyncNever, each
	// sealed segment is synced, which bounds what a power cut takes:
	// sealedBaseline); and, for bytes, raw write(2) of 1 MiB chunks with
	// nothing to frame or hash (no writer puts bytes into the page cache
	// faster). A bound below walpub's own figure bounds nothing (raw
	// write(2) into the page cache varies widely on a VM); where walpub
	// exceeds every bound, the highest is returned and the verdict says
	// that no measured limit explains a miss.
	ceiling := func(wl string, rec bool, ours float64) (float64, string) {
		type bound struct {
			v    float64
			name string
		}
		var bounds []bound
		safe := bound{v: math.NaN()}
		for _, b := range safeBaselines {
			if x := med(b, wl, rec); !math.IsNaN(x) && (math.IsNaN(safe.v) || x > safe.v) {
				safe = bound{x, "the fastest baseline whose returned records survive kill -9, " + b + ","}
			}
		}
		if !math.IsNaN(safe.v) {
			bounds = append(bounds, safe)
		}
		if x := med(sealedBaseline, wl, rec); !math.IsNaN(x) {
			bounds = append(bounds, bound{x, "the buffered file writing each full 64 MiB file back to the device in the background, " +
				"as walpub's SyncNever does each sealed segment to bound what a power cut takes (" + sealedBaseline + "),"})
		}
		if raw := med("raw-write", "append-1MiB", false); !rec && !math.IsNaN(raw) {
			bounds = append(bounds, bound{raw, "raw write(2) of 1 MiB chunks, with nothing to frame or hash,"})
		}
		var lowest, highest *bound
		for i := range bounds {
			b := &bounds[i]
			if b.v >= ours && (lowest == nil || b.v < lowest.v) {
				lowest = b
			}
			if highest == nil || b.v > highest.v {
				highest = b
			}
		}
		switch {
		case lowest != nil:
			return lowest.v, lowest.name
		case highest != nil:
			return highest.v, highest.name
		}
		return math.NaN(), ""
	}
	mk := func(goal, wl string, rec bool, refImpl string, need float64) target {
		t := target{Goal: goal, Ours: med("walpub", wl, rec), Need: need, Unit: "MB/s", CPU: math.NaN()}
		if rec {
			t.Unit = "rec/s"
		}
		if refImpl == "" {
			var peer string
			t.Ref, peer = bestPeer(wl, rec)
			t.RefName = peer
			if peer != "" {
				t.RefName = "best peer (" + peer + ")"
			} else {
				t.RefName = "best peer"
			}
			refImpl = peer
		} else {
			t.Ref, t.RefName = med(refImpl, wl, rec), refImpl
		}
		if !strings.HasSuffix(wl, "-sync") {
			t.CPU = cpu("walpub", wl) / cpu(refImpl, wl)
		}
		if !strings.HasSuffix(wl, "-sync") && !strings.HasPrefix(wl, "replay") {
			t.Ceiling, t.CeilingName = ceiling(wl, rec, t.Ours)
			t.Sealed = med(sealedBaseline, wl, rec)
		}
		// A replay verifies every record twice (Open, then Pending): two
		// verifying passes side by side on the cores bound it.
		if v := med(replayCeiling, wl, rec); strings.HasPrefix(wl, "replay") && !math.IsNaN(v) {
			t.Ceiling, t.CeilingName = v, "the buffered file's log verified twice, the two passes side by side (bufio+xxhash/2pass),"
		}
		t.Measured = !math.IsNaN(t.Ours) && !math.IsNaN(t.Ref)
		return t
	}
	ts := []target{
		mk("100 B appends, no sync: ≥ 10x the best Go peer", "append-100B", true, "", 10),
		mk("100 B appends, no sync: ≥ 0.5x buffered file + xxhash", "append-100B", true, "bufio+xxhash", 0.5),
		mk("1 KiB appends in batches of 100: ≥ buffered file", "batch100-1KiB", false, "bufio+xxhash", 1),
		mk("1 KiB appends in batches of 100: about 2x the best peer", "batch100-1KiB", false, "", 2),
		mk("1 KiB batches, sync per batch: within 5% of buffered file + fdatasync", "batch100-1KiB-sync", false, "bufio+xxhash", 0.95),
		mk("100 B batches, sync per batch: within 5% of buffered file + fdatasync", "batch100-100B-sync", false, "bufio+xxhash", 0.95),
		mk("1 MiB appends: ≥ 0.8x buffered file", "append-1MiB", false, "bufio+xxhash", 0.8),
		mk("replay of pending records (1 KiB): ≥ buffered file + xxhash", "replay-1KiB", false, "bufio+xxhash", 1),
		mk("replay of pending records (1 KiB): ahead of every peer", "replay-1KiB", false, "", 1),
	}
	// The rule for the whole chart: ahead of every peer on every
	// workload. The rows above hold it for the workloads they name; these
	// hold it for the rest.
	for _, w := range []struct {
		goal, wl string
		rec      bool
	}{
		{"100 B appends in batches of 100: ahead of every peer", "batch100-100B", true},
		{"100 B batches, sync per batch: ahead of every peer", "batch100-100B-sync", false},
		{"1 KiB appends, no sync: ahead of every peer", "append-1KiB", false},
		{"1 KiB batches, sync per batch: ahead of every peer", "batch100-1KiB-sync", false},
		{"1 MiB appends: ahead of every peer", "append-1MiB", false},
		{"replay of pending records (100 B): ahead of every peer", "replay-100B", false},
	} {
		ts = append(ts, mk(w.goal, w.wl, w.rec, "", 1))
	}
	for _, b := range []string{"kfake", "real"} {
		ours, ref := ag[aggKey{"producer", "walpub", b}], ag[aggKey{"producer", "kgo", b}]
		t := target{Goal: "robust producer ≥ 0.8x bare kgo (acks=all), broker: " + b, RefName: "kgo", Unit: "rec/s", Need: 0.8,
			Ours: math.NaN(), Ref: math.NaN(), CPU: math.NaN()}
		if ours != nil {
			t.Ours = ours.RecPS.Med
		}
		if ref != nil {
			t.Ref = ref.RecPS.Med
		}
		if ours != nil && ref != nil {
			if a, ok := ours.Extra["mb_per_cpu_s"]; ok {
				if r, ok := ref.Extra["mb_per_cpu_s"]; ok {
					t.CPU = a.Med / r.Med
				}
			}
		}
		// The least a producer under the robust producer's contract does
		// bounds both producer targets (see journalCeiling).
		ceil := ag[aggKey{"producer", journalCeiling, b}]
		const ceilName = "the least a producer does whose Write journals each record and waits for no broker (kgo+journal),"
		if ceil != nil && ceil.N > 0 {
			t.Ceiling, t.CeilingName = ceil.RecPS.Med, ceilName
		}
		t.Measured = !math.IsNaN(t.Ours) && !math.IsNaN(t.Ref)
		if b == "real" && ref == nil {
			continue
		}
		ts = append(ts, t)
		// CPU per record ≤ 2x bare kgo's: payload per CPU-second at least
		// half of kgo's. With kfake the broker runs in the measured process
		// and its CPU counts for both.
		c := target{Goal: "robust producer CPU per record ≤ 2x bare kgo's, broker: " + b, RefName: "kgo", Unit: "MB per CPU-s", Need: 0.5,
			Ours: math.NaN(), Ref: math.NaN(), CPU: math.NaN()}
		if ours != nil {
			if a, ok := ours.Extra["mb_per_cpu_s"]; ok {
				c.Ours = a.Med
			}
		}
		if ref != nil {
			if r, ok := ref.Extra["mb_per_cpu_s"]; ok {
				c.Ref = r.Med
			}
		}
		if ceil != nil && ceil.N > 0 {
			if a, ok := ceil.Extra["mb_per_cpu_s"]; ok {
				c.Ceiling, c.CeilingName = a.Med, ceilName
			}
		}
		c.Measured = !math.IsNaN(c.Ours) && !math.IsNaN(c.Ref)
		ts = append(ts, c)
	}
	// Memory: the largest backlog measured.
	for _, who := range []string{"walpub", "producer"} {
		var best *agg
		for k, a := range ag {
			if k.Section == "memory" && k.Impl == who && a.N > 0 && (best == nil || backlogOf(a.Workload) > backlogOf(best.Workload)) {
				best = a
			}
		}
		goal := "wal: peak anonymous RSS replaying a backlog of 1 KiB records ≤ 128 MiB"
		if who == "producer" {
			goal = "producer: peak anonymous RSS opening a journal with a backlog of 1 KiB records ≤ 128 MiB"
		}
		t := target{Goal: goal, Unit: "MiB", Need: 128 << 20, AtMost: true, Ours: math.NaN(), Ref: math.NaN(), CPU: math.NaN()}
		if best != nil {
			t.Goal = strings.Replace(t.Goal, "a backlog", fmt.Sprintf("a backlog of %d", backlogOf(best.Workload)), 1)
			t.Ours = best.Extra["peak_RssAnon"].Med
			t.Measured = !math.IsNaN(t.Ours)
		}
		ts = append(ts, t)
	}
	return ts
}

func backlogOf(workload string) int64 {
	var n int64
	fmt.Sscanf(workload, "backlog-%d", &n)
	return n
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "rec/s":
		if math.IsNaN(v) {
			return "–"
		}
		return si(v) + " rec/s"
	case "MB/s":
		if math.IsNaN(v) {
			return "–"
		}
		return mbps(v) + " MB/s"
	case "MiB":
		return fmtMiB(v)
	case "MB per CPU-s":
		if math.IsNaN(v) {
			return "–"
		}
		return mbps(v) + " MB per CPU-s"
	}
	return fmt.Sprint(v)
}

func renderReport(s *Suite, chart string) string {
	ag := aggregate(s)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# walpub beside the Go peers: results\n\n")
	p("Generated by `cd benchmarks/peers && %s` on %s in %s. Every figure is the median of %d fresh processes, ",
		s.Env.CommandLine, s.Start.UTC().Format("2006-01-02 15:04 MST"), s.End.Sub(s.Start).Round(time.Second), s.Config.Reps)
	p("each in a fresh directory, with the min–max range; MB/s is 10^6 payload bytes per second; ")
	p("peak RSS is the child's `rusage.ru_maxrss` (it counts the touched pages of mapped files, so an mmap-based log ")
	p("shows the part of its segments it touched). Regenerate with the same command; see [README.md](README.md).\n\n")
	p("The machine is a shared 2-core VM: other work ran beside this benchmark, so single figures can be off by tens of ")
	p("percent; compare within a table (the implementations of one workload alternate within each repetition), not across runs. ")
	p("Where a reference's min–max range is wide (on a VM, write(2) into the page cache can run at very different speeds ")
	p("from one process to the next), a ratio against its median is uncertain by as much.\n\n")

	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s (%d cores) |\n", s.Env.CPU, s.Env.Cores)
	p("| memory | %s |\n", memTotal(s.Env.Memory))
	p("| kernel | Linux %s |\n", s.Env.Kernel)
	p("| temp dir | `%s` on `%s` |\n", s.Env.TempDir, s.Env.FS)
	p("| disk | `%s` |\n", strings.ReplaceAll(s.Env.Disk, "\n", "` / `"))
	p("| Go | %s |\n", s.Env.Go)
	if s.Env.GuestMemory != "" {
		p("| guest memory | %s |\n", s.Env.GuestMemory)
	}
	p("| walpub | commit `%s` |\n", s.Env.Commit)
	var loads []float64
	for _, r := range s.Runs {
		if r.Load > 0 {
			loads = append(loads, r.Load)
		}
	}
	if ls := summarize(loads); ls.ok() {
		p("| load during the run | 1-minute load average %.1f median, %.1f–%.1f (on %d cores: above %d, other work was competing for the CPU) |\n",
			ls.Med, ls.Min, ls.Max, s.Env.Cores, s.Env.Cores)
	}
	p("\n")

	p("## Targets (DESIGN.md, \"Speed targets\"; ahead of every peer on every workload; producer CPU)\n\n")
	p("| target | walpub | reference | ratio | verdict | ratio by CPU time |\n|---|---:|---:|---:|---|---:|\n")
	for _, t := range targets(s, ag) {
		if t.AtMost {
			p("| %s | %s | – | – | %s | |\n", t.Goal, fmtVal(t.Ours, t.Unit), t.verdict())
			continue
		}
		cpuRatio := "–"
		if !math.IsNaN(t.CPU) {
			cpuRatio = fmt.Sprintf("%.2fx", t.CPU)
		}
		ratio := fmt.Sprintf("%.2fx (need %.2gx)", t.ratio(), t.Need)
		if !t.Measured {
			ratio = fmt.Sprintf("– (need %.2gx)", t.Need)
		}
		p("| %s | %s | %s: %s | %s | %s | %s |\n", t.Goal, fmtVal(t.Ours, t.Unit), t.RefName, fmtVal(t.Ref, t.Unit), ratio, t.verdict(), cpuRatio)
	}
	p("\nThe verdict goes by the wall-clock medians. \"Ratio by CPU time\" compares payload bytes per CPU-second ")
	p("of the whole child process (every thread, user + system) in the timed part: when other work on the machine ")
	p("takes cores away, it moves less than wall-clock throughput does (it does not apply where the disk sets the pace).\n")
	p("\n![throughput per workload and implementation](%s)\n\n", chart)

	p("## Physical baselines\n\n")
	if a := ag[aggKey{"physical", "fdatasync", "write4KiB+fdatasync"}]; a != nil && a.N > 0 {
		p("- **fdatasync latency** (append 4 KiB + fdatasync, %s per run): median %s (p10 %s, p90 %s, p99 %s); ",
			si(a.Extra["records"].Med), dur(a.Extra["p50"].Med), dur(a.Extra["p10"].Med), dur(a.Extra["p90"].Med), dur(a.Extra["p99"].Med))
		p("medians across runs range %s–%s. A batch of 100 × 1 KiB per sync can at best reach about %s MB/s.\n",
			dur(a.Extra["p50"].Min), dur(a.Extra["p50"].Max), mbps(102400/a.Extra["p50"].Med/1e6))
	}
	if a := ag[aggKey{"physical", "xxhash", "hash"}]; a != nil && a.N > 0 {
		p("- **xxhash64** (cespare/xxhash/v2, hot data): 100 B %s MB/s (%s hashes/s), 1 KiB %s MB/s, 1 MiB %s MB/s.\n",
			mbps(a.Extra["MBps_100"].Med), si(a.Extra["recps_100"].Med), mbps(a.Extra["MBps_1024"].Med), mbps(a.Extra["MBps_1048576"].Med))
	}
	if a := ag[aggKey{"wal", "raw-write", "append-1MiB"}]; a != nil && a.N > 0 {
		p("- **raw 1 MiB sequential writes** (write(2), no framing): %s MB/s (%s–%s).\n", mbps(a.MBPS.Med), mbps(a.MBPS.Min), mbps(a.MBPS.Max))
	}
	if a := ag[aggKey{"wal", "bufio+xxhash", "append-100B"}]; a != nil && a.N > 0 {
		p("- **buffered file + xxhash** (bufio 256 KiB, length + xxhash64 per record): 100 B appends %s rec/s; see the tables.\n", si(a.RecPS.Med))
	}
	p("\n")

	p("## Workloads\n\n")
	p("\"MB per CPU-s\" is payload per CPU-second of the whole child (all threads, user + system) during the timed part, ")
	p("\"CPU use\" the CPU time over the wall time (up to 200%% on 2 cores; background threads such as a prefaulter count). ")
	p("Write runs stop at their byte volume or their time limit, whichever comes first; the timed part is from the first ")
	p("append to the last one (plus a final flush of user-space buffers to the OS, no sync), not Open or Close. ")
	p("Replay runs time Open plus reading the records of a log that a separate process wrote and closed (page cache warm), all of them or as many as fit in the time limit.\n\n")
	for _, w := range workloads {
		var rows []*agg
		for _, im := range implOrder() {
			if a := ag[aggKey{"wal", im.Name, w.Name}]; a != nil {
				rows = append(rows, a)
			}
		}
		if len(rows) == 0 {
			continue
		}
		base := ag[aggKey{"wal", "bufio+xxhash", w.Name}]
		p("### %s (`%s`)\n\n", w.Title, w.Name)
		p("| implementation | records/s | MB/s | vs bufio+xxhash | MB per CPU-s | CPU use | minor faults per MB | peak RSS | runs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, a := range rows {
			name := a.Impl
			if impls[a.Impl] != nil && impls[a.Impl].Kind == "walpub" {
				name = "**" + name + "**"
			}
			if a.N == 0 {
				p("| %s | error | | | | | | | 0 of %d |\n", name, len(a.Errs))
				continue
			}
			rel := "–"
			if base != nil && base.N > 0 {
				rel = fmt.Sprintf("%.2fx", a.MBPS.Med/base.MBPS.Med)
			}
			runs := fmt.Sprint(a.N)
			if len(a.Errs) > 0 {
				runs += fmt.Sprintf(" (+%d failed)", len(a.Errs))
			}
			cpuMB, share, flt := "–", "–", "–"
			if st, ok := a.Extra["mb_per_cpu_s"]; ok {
				cpuMB = mbps(st.Med)
			}
			if st, ok := a.Extra["cpu_share"]; ok {
				share = fmt.Sprintf("%.0f%%", 100*st.Med)
			}
			if st, ok := a.Extra["minflt"]; ok && a.MBPS.Med > 0 {
				flt = fmt.Sprintf("%.0f", st.Med/(a.MBPS.Med*a.Extra["seconds"].Med))
			}
			p("| %s | %s (%s–%s) | %s (%s–%s) | %s | %s | %s | %s | %s | %s |\n", name,
				si(a.RecPS.Med), si(a.RecPS.Min), si(a.RecPS.Max),
				mbps(a.MBPS.Med), mbps(a.MBPS.Min), mbps(a.MBPS.Max), rel, cpuMB, share, flt, fmtMiB(a.RSS.Med), runs)
		}
		p("\n")
	}

	p("## Robust producer vs bare kgo\n\n")
	p("1 KiB records, no key, one topic with 3 partitions; both clients idempotent with acks=all; timed from the first ")
	p("Write/Produce to the end of Flush (every record confirmed). kfake runs in the measuring process.\n\n")
	p("CPU figures are for the whole child process, which with kfake includes the broker.\n\n")
	p("%s is the ceiling for the robust producer's targets: the least a producer does under its contract. ", journalCeiling)
	p("Its Write frames each record (length, xxhash64) into a shared mapping, as mmap+xxhash does, and waits for no broker; ")
	p("a sender reads each record back from the journal, verifies it and hands it to a bare kgo client, which holds at most ")
	p("its default 10,000 records (with the writer ahead of the broker and memory bounded, records must come back from the journal). ")
	p("It journals no acknowledgement and encodes no header, key or topic, all of which the robust producer does.\n\n")
	p("| broker | producer | records/s | MB/s | MB per CPU-s | CPU use | peak RSS | ratio to kgo | runs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, br := range []string{"kfake", "real"} {
		ref := ag[aggKey{"producer", "kgo", br}]
		for _, name := range []string{"kgo", journalCeiling, "walpub"} {
			a := ag[aggKey{"producer", name, br}]
			if a == nil {
				continue
			}
			label := map[string]string{"kgo": "bare kgo", journalCeiling: journalCeiling + " (ceiling)", "walpub": "**walpub robust producer**"}[name]
			if a.N == 0 {
				p("| %s | %s | error | | | | | | 0 of %d |\n", br, label, len(a.Errs))
				continue
			}
			ratio := "–"
			if ref != nil && ref.N > 0 {
				ratio = fmt.Sprintf("%.2fx", a.RecPS.Med/ref.RecPS.Med)
			}
			cpuMB, share := "–", "–"
			if st, ok := a.Extra["mb_per_cpu_s"]; ok {
				cpuMB = mbps(st.Med)
			}
			if st, ok := a.Extra["cpu_share"]; ok {
				share = fmt.Sprintf("%.0f%%", 100*st.Med)
			}
			p("| %s | %s | %s (%s–%s) | %s | %s | %s | %s | %s | %d |\n", br, label, si(a.RecPS.Med), si(a.RecPS.Min), si(a.RecPS.Max),
				mbps(a.MBPS.Med), cpuMB, share, fmtMiB(a.RSS.Med), ratio, a.N)
		}
	}
	p("\n")

	p("## Memory with a backlog\n\n")
	p("A first process writes N pending 1 KiB records and closes; a fresh process then opens them: the wal replays every ")
	p("record through `Pending`; the producer opens its journal (broker unreachable, so the backlog stays) and is held 3 s. ")
	p("Peaks sampled every 10 ms from /proc/self/status and runtime/metrics; `ru_maxrss` includes mapped file pages.\n\n")
	p("| who | backlog | peak anon RSS | peak file RSS | peak Go heap objects | ru_maxrss | time |\n|---|---:|---:|---:|---:|---:|---:|\n")
	var memKeys []aggKey
	for k := range ag {
		if k.Section == "memory" {
			memKeys = append(memKeys, k)
		}
	}
	sort.Slice(memKeys, func(i, j int) bool {
		if memKeys[i].Impl != memKeys[j].Impl {
			return memKeys[i].Impl > memKeys[j].Impl
		}
		return backlogOf(memKeys[i].Workload) < backlogOf(memKeys[j].Workload)
	})
	for _, k := range memKeys {
		a := ag[k]
		who := map[string]string{"walpub": "wal Open + Pending", "producer": "NewProducer on the journal"}[k.Impl]
		if a.N == 0 {
			p("| %s | %d | error: %s | | | | |\n", who, backlogOf(k.Workload), strings.Join(a.Errs, "; "))
			continue
		}
		tm := dur(a.Extra["seconds"].Med)
		if k.Impl == "producer" {
			tm = "open " + tm
		}
		p("| %s | %d | %s | %s | %s | %s | %s |\n", who, backlogOf(k.Workload), fmtMiB(a.Extra["peak_RssAnon"].Med),
			fmtMiB(a.Extra["peak_RssFile"].Med), fmtMiB(a.Extra["peak_heap_objects"].Med), fmtMiB(a.RSS.Med), tm)
	}
	p("\n")

	p("## Implementations\n\n")
	p("| implementation | version | how the workloads map onto it |\n|---|---|---|\n")
	for _, im := range implOrder() {
		v := s.Env.Versions[im.Module]
		if im.Module == "github.com/walpub/walpub" {
			v = "this repository, " + s.Env.Commit
		}
		if im.Module == "" {
			v = "–"
		}
		p("| %s | %s | %s |\n", im.Name, v, im.Note)
	}
	p("\nOther modules: franz-go %s, kfake %s, xxhash %s, mmap-go %s (walpub is built here with the versions this ",
		s.Env.Versions["github.com/twmb/franz-go"], s.Env.Versions["github.com/twmb/franz-go/pkg/kfake"],
		s.Env.Versions["github.com/cespare/xxhash/v2"], s.Env.Versions["github.com/edsrzf/mmap-go"])
	p("module's minimal version selection picks, which can be newer than the main module's go.mod). ")
	p("Every peer the issue names builds here with %s.\n\n", s.Env.Go)

	var errs []string
	for _, r := range s.Runs {
		if r.Err != "" {
			errs = append(errs, fmt.Sprintf("- %s %s #%d: %s", r.Impl, r.Workload, r.Rep+1, strings.ReplaceAll(r.Err, "\n", " ")))
		}
	}
	if len(s.Skipped) > 0 || len(errs) > 0 {
		p("## Not measured\n\n")
		for _, sk := range s.Skipped {
			p("- %s\n", sk)
		}
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Sprintf("- … and %d more", len(errs)-20))
		}
		for _, e := range errs {
			p("%s\n", e)
		}
		p("\n")
	}
	return b.String()
}

func memTotal(kb string) string {
	var n float64
	if _, err := fmt.Sscanf(kb, "%f kB", &n); err != nil {
		return kb
	}
	return fmt.Sprintf("%.1f GiB", n/(1<<20))
}
