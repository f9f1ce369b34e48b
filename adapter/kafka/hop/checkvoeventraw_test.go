package hop

import "testing"

// TestCheckVOEventRaw: hop's VOEvent model has a field _raw, which its
// load sets to the message's bytes after it took the root's attributes
// and elements: one named _raw is taken, then overwritten. Both cases
// were run through hop-client 0.13.0's VOEvent.deserialize and load_file,
// which take them; _raw does not stand for the ivorn.
func TestCheckVOEventRaw(t *testing.T) {
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`<voe:VOEvent xmlns:voe="v" ivorn="i" _raw="x"/>`, true},
		{`<voe:VOEvent xmlns:voe="v" ivorn="i"><_raw>x</_raw></voe:VOEvent>`, true},
		{`<voe:VOEvent xmlns:voe="v" _raw="x"/>`, false},
	} {
		err := Check(FormatVOEvent, []byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("Check(voevent, %s) = %v; hop takes it: %v", tc.doc, err, tc.ok)
		}
	}
}
