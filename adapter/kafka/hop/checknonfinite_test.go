package hop

import "testing"

// TestCheckJSONNonFinite: hop-client decodes a json message with
// Python's json.loads, which takes NaN, Infinity and -Infinity as values
// (and json.dumps writes them: Python producers send them), so Check
// takes them where a value may stand, and refuses what json.loads
// refuses. Each case was run through hop-client 0.13.0's
// JSONBlob.deserialize and JSONBlob.load, with the same outcome.
func TestCheckJSONNonFinite(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{`NaN`, true},
		{`Infinity`, true},
		{`-Infinity`, true},
		{` NaN `, true},
		{`[NaN, 1]`, true},
		{`[1,NaN]`, true},
		{`{"a": -Infinity, "b": [Infinity,NaN]}`, true},
		{`"NaN"`, true},
		{`1 NaN`, false},
		{`[1 NaN]`, false},
		{`-NaN`, false},
		{`nan`, false},
		{`+Infinity`, false},
		{`{NaN: 1}`, false},
		{`[-  Infinity]`, false},
		{`[NaN]x`, false},
		{`Infinityx`, false},
		{`NaNa`, false},
		{`[Infinity-1]`, false},
		{`1NaN`, false},
		{`[1e-Infinity]`, false},
		{`{"a":1, NaN}`, false},
	} {
		err := Check(FormatJSON, []byte(tc.value))
		if (err == nil) != tc.ok {
			t.Errorf("Check(json, %s) = %v; hop takes it: %v", tc.value, err, tc.ok)
		}
	}
	// hop builds a GCNCircular from json.loads's object too.
	if err := Check(FormatCircular, []byte(`{"header": {"ra": NaN}, "body": "b"}`)); err != nil {
		t.Errorf("Check(circular, with NaN): %v", err)
	}
}
