package cpu

import (
	"os"
	"runtime"
	"testing"
)

func TestFeatures(t *testing.T) {
	t.Logf("GOARCH=%s X86=%+v NoAsm=%v", runtime.GOARCH, X86, NoAsm)
	if runtime.GOARCH != "amd64" && (X86.HasAVX2 || X86.HasFMA) {
		t.Errorf("x86 features reported on %s", runtime.GOARCH)
	}
	if NoAsm != (os.Getenv("SHOGGO_NOASM") == "1") {
		t.Errorf("NoAsm = %v with SHOGGO_NOASM=%q", NoAsm, os.Getenv("SHOGGO_NOASM"))
	}
	if want := HasAVX2FMA() && !NoAsm; UseAVX2FMA() != want {
		t.Errorf("UseAVX2FMA() = %v, want %v", UseAVX2FMA(), want)
	}
}
