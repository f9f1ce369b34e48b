package main

import (
	"fmt"
	"math"
	"slices"
)

type stat struct{ Med, Min, Max float64 }

func summarize(v []float64) stat {
	if len(v) == 0 {
		return stat{math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1]}
}

func (s stat) ok() bool { return !math.IsNaN(s.Med) }

// agg is every repetition of one implementation on one workload.
type agg struct {
	Impl, Workload string
	N              int
	RecPS, MBPS    stat
	RSS            stat // bytes
	Errs           []string
	Extra          map[string]stat
}

type aggKey struct{ Section, Impl, Workload string }

func aggregate(s *Suite) map[aggKey]*agg {
	type acc struct {
		rec, mb, rss []float64
		errs         []string
		extra        map[string][]float64
	}
	accs := map[aggKey]*acc{}
	var order []aggKey
	for _, r := range s.Runs {
		k := aggKey{r.Section, r.Impl, r.Workload}
		a := accs[k]
		if a == nil {
			a = &acc{extra: map[string][]float64{}}
			accs[k] = a
			order = append(order, k)
		}
		if r.Err != "" {
			a.errs = append(a.errs, r.Err)
			continue
		}
		if r.Res == nil {
			continue
		}
		if r.Res.Seconds > 0 {
			a.rec = append(a.rec, float64(r.Res.Records)/r.Res.Seconds)
			a.mb = append(a.mb, float64(r.Res.Bytes)/r.Res.Seconds/1e6)
		}
		a.rss = append(a.rss, float64(r.MaxRSS))
		for k, v := range r.Res.Extra {
			a.extra[k] = append(a.extra[k], v)
		}
		if cpu := r.Res.Extra["cpu_s"]; cpu > 0 && r.Res.Bytes > 0 {
			a.extra["mb_per_cpu_s"] = append(a.extra["mb_per_cpu_s"], float64(r.Res.Bytes)/1e6/cpu)
			a.extra["cpu_share"] = append(a.extra["cpu_share"], cpu/r.Res.Seconds)
		}
		a.extra["seconds"] = append(a.extra["seconds"], r.Res.Seconds)
		a.extra["records"] = append(a.extra["records"], float64(r.Res.Records))
	}
	out := map[aggKey]*agg{}
	for _, k := range order {
		a := accs[k]
		g := &agg{Impl: k.Impl, Workload: k.Workload, N: len(a.rss), RecPS: summarize(a.rec), MBPS: summarize(a.mb),
			RSS: summarize(a.rss), Errs: a.errs, Extra: map[string]stat{}}
		for name, v := range a.extra {
			g.Extra[name] = summarize(v)
		}
		out[k] = g
	}
	return out
}

// si formats a rate with a k/M/G suffix and three significant digits.
func si(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 1e9:
		return fmt.Sprintf("%.3g G", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.3g M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3g k", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// mbps formats MB/s (10^6 bytes per second).
func mbps(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtMiB(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f MiB", v/(1<<20))
}

func dur(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "–"
	case sec < 1e-3:
		return fmt.Sprintf("%.0f µs", sec*1e6)
	case sec < 1:
		return fmt.Sprintf("%.3g ms", sec*1e3)
	}
	return fmt.Sprintf("%.3g s", sec)
}
