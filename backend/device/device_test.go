package device

import "testing"

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"", true}, {"auto", true}, {"CPU", true}, {"cuda:7", false}, {"tpu", false}} {
		be, err := Open(tc.name)
		if tc.ok && (err != nil || be == nil || be.Name() != "cpu") {
			t.Errorf("Open(%q) = %v, %v; want the cpu backend", tc.name, be, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("Open(%q) succeeded; want an error", tc.name)
		}
	}
}
