//go:build !(linux && amd64)

package cpu

// EnableAMX reports false: shoggo uses AMX only on Linux.
func EnableAMX() bool { return false }
