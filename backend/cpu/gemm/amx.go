package gemm

import "github.com/shoggo/shoggo/internal/cpu"

// AMX-BF16 (Sapphire Rapids and later Xeons) for the bf16 path (bf16.go):
// TDPBF16PS multiplies a 16x32 bf16 tile of A by a 16x16-pair tile of B
// into a 16x16 float32 tile in one instruction (16K flops); the kernel
// keeps a 32x32 block of C in four tiles (mixed_amd64.s).

// hasAMX reports whether the CPU has AMX-BF16 (and what the rest of the
// bf16 path needs); useAMX selects it before VDPBF16PS. SHOGGO_NOASM=1,
// SHOGGO_NOBF16=1 and SHOGGO_NOAMX=1 switch it off. Linux asks a process
// to request the tile state before it uses it: amxReady does, once.
var (
	hasAMX = cpu.X86.HasAMXBF16 && hasBF16
	useAMX = hasAMX && !cpu.NoAsm && !cpu.NoBF16 && !cpu.NoAMX
)

// amxReady reports whether AMX may run: useAMX, and the OS has granted the
// permission (asked for once).
func amxReady() bool { return useAMX && cpu.EnableAMX() }

// amxConfig is the tile configuration (LDTILECFG's 64 bytes): palette 1,
// eight tiles of 16 rows of 64 bytes.
var amxConfig = func() *[64]byte {
	var c [64]byte
	c[0] = 1
	for t := 0; t < 8; t++ {
		c[16+2*t] = 64
		c[48+t] = 16
	}
	return &c
}()
