package cpu

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestFeatures(t *testing.T) {
	t.Logf("GOARCH=%s X86=%+v NoAsm=%v", runtime.GOARCH, X86, NoAsm)
	if runtime.GOARCH != "amd64" && X86 != (struct {
		HasAVX2, HasFMA, HasF16C, HasAVX512F, HasAVX512BW, HasAVX512VL, HasAVX512BF16, HasAMXBF16 bool
	}{}) {
		t.Errorf("x86 features reported on %s", runtime.GOARCH)
	}
	if NoAsm != (os.Getenv("SHOGGO_NOASM") == "1") {
		t.Errorf("NoAsm = %v with SHOGGO_NOASM=%q", NoAsm, os.Getenv("SHOGGO_NOASM"))
	}
	if want := HasAVX2FMA() && !NoAsm; UseAVX2FMA() != want {
		t.Errorf("UseAVX2FMA() = %v, want %v", UseAVX2FMA(), want)
	}
	if NoBF16 != (os.Getenv("SHOGGO_NOBF16") == "1") {
		t.Errorf("NoBF16 = %v with SHOGGO_NOBF16=%q", NoBF16, os.Getenv("SHOGGO_NOBF16"))
	}
	if want := HasAVX512BF16() && !NoAsm && !NoBF16; UseAVX512BF16() != want {
		t.Errorf("UseAVX512BF16() = %v, want %v", UseAVX512BF16(), want)
	}
	if UseAMXBF16() && (NoAsm || NoBF16 || NoAMX || !X86.HasAMXBF16 || !EnableAMX()) {
		t.Errorf("UseAMXBF16 with NoAsm=%v NoBF16=%v NoAMX=%v %+v", NoAsm, NoBF16, NoAMX, X86)
	}
	if X86.HasAMXBF16 && runtime.GOOS == "linux" && !EnableAMX() {
		t.Errorf("AMX-BF16 present but the permission request failed")
	}
	if HasAVX512BF16() && !(X86.HasAVX512F && X86.HasAVX512BW && X86.HasAVX512VL && HasAVX2F16C()) {
		t.Errorf("HasAVX512BF16 without its prerequisites: %+v", X86)
	}
}

// TestCPUInfo compares the features with the flags Linux reports (which
// also reflect what the kernel enabled in XCR0).
func TestCPUInfo(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("not amd64")
	}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo")
	}
	var flags map[string]bool
	for _, line := range strings.Split(string(data), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			flags = map[string]bool{}
			for _, f := range strings.Fields(val) {
				flags[f] = true
			}
			break
		}
	}
	if flags == nil {
		t.Skip("no flags line in /proc/cpuinfo")
	}
	for _, c := range []struct {
		flag string
		got  bool
	}{
		{"avx2", X86.HasAVX2}, {"fma", X86.HasFMA}, {"f16c", X86.HasF16C},
		{"avx512f", X86.HasAVX512F}, {"avx512bw", X86.HasAVX512BW},
		{"avx512vl", X86.HasAVX512VL}, {"avx512_bf16", X86.HasAVX512BF16},
		{"amx_bf16", X86.HasAMXBF16}, {"amx_tile", X86.HasAMXBF16},
	} {
		if c.got != flags[c.flag] {
			t.Errorf("%s: cpuid says %v, /proc/cpuinfo says %v", c.flag, c.got, flags[c.flag])
		}
	}
}
