package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// renderSVG draws one panel per workload (and one for the producer) with a
// horizontal bar per implementation: the median MB/s, a whisker for the
// min–max range and the value printed beside it. Each panel has its own
// linear scale starting at zero.
func renderSVG(s *Suite) string {
	ag := aggregate(s)
	type bar struct {
		label string
		kind  string
		st    stat
	}
	type panel struct {
		title string
		bars  []bar
	}
	var panels []panel
	for _, w := range workloads {
		pn := panel{title: w.Title}
		for _, im := range implOrder() {
			if a := ag[aggKey{"wal", im.Name, w.Name}]; a != nil && a.N > 0 {
				pn.bars = append(pn.bars, bar{im.Name, im.Kind, a.MBPS})
			}
		}
		if len(pn.bars) > 0 {
			panels = append(panels, pn)
		}
	}
	for _, br := range []string{"kfake", "real"} {
		pn := panel{title: "producer, 1 KiB records, acks=all, broker: " + br}
		for _, name := range []string{"walpub", "kgo"} {
			if a := ag[aggKey{"producer", name, br}]; a != nil && a.N > 0 {
				kind, label := "peer", "bare kgo"
				if name == "walpub" {
					kind, label = "walpub", "walpub robust producer"
				}
				pn.bars = append(pn.bars, bar{label, kind, a.MBPS})
			}
		}
		if len(pn.bars) > 0 {
			panels = append(panels, pn)
		}
	}

	const (
		cols     = 2
		panelW   = 560
		labelW   = 150
		valueW   = 70
		barH     = 14
		barGap   = 5
		titleH   = 22
		axisH    = 18
		margin   = 16
		headerH  = 46
		panelGap = 18
	)
	maxBars := 1
	for _, p := range panels {
		maxBars = max(maxBars, len(p.bars))
	}
	panelH := titleH + maxBars*(barH+barGap) + axisH
	rows := (len(panels) + cols - 1) / cols
	width := 2*margin + cols*panelW + (cols-1)*panelGap
	height := headerH + rows*(panelH+panelGap) + margin + 20
	colors := map[string]string{"walpub": "#e8590c", "baseline": "#868e96", "peer": "#4c6ef5"}

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">walpub beside the Go peers: throughput, MB/s (median, whisker = min–max of %d runs)</text>`+"\n", margin, s.Config.Reps)
	p(`<text x="%d" y="38" fill="#555">%s · %d cores · %s · Go %s · %s</text>`+"\n", margin, html.EscapeString(s.Env.CPU), s.Env.Cores,
		html.EscapeString(firstField(s.Env.FS, 1)), html.EscapeString(strings.TrimPrefix(s.Env.Go, "go")), s.Start.UTC().Format("2006-01-02"))
	for i, pn := range panels {
		x0 := margin + (i%cols)*(panelW+panelGap)
		y0 := headerH + (i/cols)*(panelH+panelGap)
		p(`<g transform="translate(%d,%d)">`+"\n", x0, y0)
		p(`<rect x="0" y="0" width="%d" height="%d" fill="#f8f9fa" stroke="#dee2e6"/>`+"\n", panelW, panelH)
		p(`<text x="6" y="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(pn.title))
		top := 0.0
		for _, br := range pn.bars {
			top = math.Max(top, br.st.Max)
		}
		scaleMax := niceCeil(top)
		plotW := float64(panelW - labelW - valueW - 10)
		sx := func(v float64) float64 { return float64(labelW) + v/scaleMax*plotW }
		// grid lines at quarters
		for q := 0; q <= 4; q++ {
			v := scaleMax * float64(q) / 4
			x := sx(v)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dee2e6"/>`+"\n", x, titleH-2, x, panelH-axisH+2)
			p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#666" font-size="9">%s</text>`+"\n", x, panelH-5, axisLabel(v))
		}
		for j, br := range pn.bars {
			y := titleH + j*(barH+barGap)
			weight := "normal"
			if br.kind == "walpub" {
				weight = "bold"
			}
			p(`<text x="%d" y="%d" text-anchor="end" font-weight="%s">%s</text>`+"\n", labelW-6, y+barH-3, weight, html.EscapeString(br.label))
			p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y, sx(br.st.Med)-float64(labelW), barH, colors[br.kind])
			cy := float64(y) + barH/2
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#212529"/>`+"\n", sx(br.st.Min), cy, sx(br.st.Max), cy)
			for _, v := range []float64{br.st.Min, br.st.Max} {
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#212529"/>`+"\n", sx(v), cy-3, sx(v), cy+3)
			}
			p(`<text x="%.1f" y="%d" fill="#212529">%s</text>`+"\n", sx(br.st.Max)+4, y+barH-3, mbps(br.st.Med))
		}
		p("</g>\n")
	}
	ly := height - margin
	lx := margin
	for _, k := range []struct{ kind, label string }{{"walpub", "walpub"}, {"baseline", "physical baseline"}, {"peer", "Go peer / bare kgo"}} {
		p(`<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, ly-9, colors[k.kind], lx+16, ly, k.label)
		lx += 150
	}
	p("</svg>\n")
	return b.String()
}

func firstField(s string, i int) string {
	f := strings.Fields(s)
	if i < len(f) {
		return f[i]
	}
	return s
}

// niceCeil rounds v up to a round multiple of a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func axisLabel(v float64) string {
	if v == 0 {
		return "0"
	}
	return strings.TrimSuffix(strings.TrimSuffix(mbps(v), ".00"), ".0")
}
