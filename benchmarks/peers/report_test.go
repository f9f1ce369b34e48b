package main

import (
	"math"
	"strings"
	"testing"
)

func TestVerdictCeiling(t *testing.T) {
	base := target{Goal: "g", Unit: "MB/s", Ours: 2970, Ref: 2985, Need: 2, Measured: true, CPU: math.NaN()}
	for _, tc := range []struct {
		name    string
		ceiling float64
		need    float64
		above   bool
		met     bool
	}{
		{"goal above the ceiling", 4213, 2, true, false},
		{"goal below the ceiling", 8000, 2, false, false},
		{"no ceiling measured", math.NaN(), 2, false, false},
		{"no ceiling applies", 0, 2, false, false},
		{"met", 4213, 0.9, false, true},
	} {
		tg := base
		tg.Ceiling, tg.CeilingName, tg.Need = tc.ceiling, "raw write(2)", tc.need
		v := tg.verdict()
		if got := strings.Contains(v, "above the ceiling measured"); got != tc.above {
			t.Errorf("%s: verdict %q: above the ceiling %v, want %v", tc.name, v, got, tc.above)
		}
		if got := v == "**met**"; got != tc.met {
			t.Errorf("%s: verdict %q: met %v, want %v", tc.name, v, got, tc.met)
		}
		if tc.above && !strings.Contains(v, "5970 MB/s") {
			t.Errorf("%s: verdict %q does not name the figure the goal asks for", tc.name, v)
		}
	}
}
