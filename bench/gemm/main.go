// Command gemm times shoggo's gemm.Sgemm on the shapes in shapes.txt (read
// from stdin) and prints "<name> <threads> <GFLOP/s>" lines, the format of
// openblas/sgemm_openblas.c, so run.sh can put the two side by side.
//
//	go run ./bench/gemm -threads 2 < bench/gemm/shapes.txt
//
// -prec bf16 or fp16 times gemm.GemmMixed instead, with both operands at
// that precision, as the autocast linear layers call it (mixed.sh): an
// optional eighth column of the shape names the operands' storage, one
// letter for A and one for B, h for a 16-bit activation (U16 of that
// dtype) and f for a float32 operand rounded while packed (a weight or an
// upstream gradient). Without it, NT (forward, y = x W^T) is "hf", TN
// (weight gradient, dW = dY^T x) "fh" and NN (dX = dY W) "ff".
// SHOGGO_NOBF16=1 in the environment makes bf16 run on the AVX2 kernel.
//
// -clock thread times the calling thread's CPU time instead of wall time
// (with -threads 1): on a machine shared with other work it leaves out the
// time the thread was not running.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

func main() {
	threads := flag.Int("threads", 1, "threads for Sgemm")
	minTime := flag.Float64("mintime", 0.5, "seconds to time each shape for (at least 3 calls)")
	only := flag.String("only", "", "time only the shape with this name")
	clock := flag.String("clock", "wall", "wall, or thread: the calling thread's CPU time (one thread only)")
	precName := flag.String("prec", "fp32", "fp32 (Sgemm), or bf16, fp16 (GemmMixed with both operands at that precision)")
	flag.Parse()
	var prec tensor.DType
	switch *precName {
	case "fp32":
		prec = tensor.F32
	case "bf16":
		prec = tensor.BF16
	case "fp16":
		prec = tensor.F16
	default:
		fmt.Fprintln(os.Stderr, "-prec: fp32, bf16 or fp16")
		os.Exit(2)
	}
	now := wallClock
	switch *clock {
	case "wall":
	case "thread":
		if *threads != 1 {
			fmt.Fprintln(os.Stderr, "-clock thread needs -threads 1")
			os.Exit(2)
		}
		runtime.LockOSThread()
		now = threadClock
	default:
		fmt.Fprintln(os.Stderr, "-clock: wall or thread")
		os.Exit(2)
	}
	gemm.SetThreads(*threads)
	rng := rand.New(rand.NewPCG(1, 1))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		var name, ta, tb, ops string
		var m, n, k int
		var beta float32
		if c, _ := fmt.Sscan(line, &name, &ta, &tb, &m, &n, &k, &beta, &ops); c < 7 {
			continue
		}
		if *only != "" && name != *only {
			continue
		}
		transA, transB := ta == "T", tb == "T"
		lda, ldb, ldc := k, n, n
		if transA {
			lda = m
		}
		if transB {
			ldb = k
		}
		a, b, c := randVec(rng, m*k), randVec(rng, k*n), randVec(rng, m*n)
		call := func() { gemm.Sgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc) }
		if prec != tensor.F32 {
			if ops == "" {
				switch {
				case !transA && transB:
					ops = "hf"
				case transA:
					ops = "fh"
				default:
					ops = "ff"
				}
			}
			if len(ops) != 2 || strings.Trim(ops, "hf") != "" {
				fmt.Fprintf(os.Stderr, "%s: operands %q: want two letters h or f\n", name, ops)
				os.Exit(2)
			}
			oa, ob := operand(a, ops[0], prec), operand(b, ops[1], prec)
			call = func() { gemm.GemmMixed(transA, transB, m, n, k, 1, oa, lda, ob, ldb, beta, c, ldc) }
		}
		call() // warm up
		var times []float64
		start := now()
		for len(times) < 3 || now()-start < *minTime {
			t0 := now()
			call()
			times = append(times, now()-t0)
		}
		slices.Sort(times)
		fmt.Printf("%s %d %.2f\n", name, *threads, 2*float64(m)*float64(n)*float64(k)/times[len(times)/2]/1e9)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var epoch = time.Now()

func wallClock() float64 { return time.Since(epoch).Seconds() }

// threadClock returns the calling thread's CPU time in seconds.
func threadClock() float64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		panic(errno)
	}
	return float64(ts.Sec) + float64(ts.Nsec)*1e-9
}

// operand returns v as a GemmMixed operand at precision prec: stored as
// 16-bit values of that dtype (kind 'h') or as float32 ('f').
func operand(v []float32, kind byte, prec tensor.DType) gemm.Operand {
	if kind == 'f' {
		return gemm.F32Op(v, prec)
	}
	u := make([]uint16, len(v))
	for i, x := range v {
		if prec == tensor.BF16 {
			u[i] = tensor.F32ToBF16(x)
		} else {
			u[i] = tensor.F32ToF16(x)
		}
	}
	return gemm.HalfOp(u, prec, prec)
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}
