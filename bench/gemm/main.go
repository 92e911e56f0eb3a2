// Command gemm times shoggo's gemm.Sgemm on the shapes in shapes.txt (read
// from stdin) and prints "<name> <threads> <GFLOP/s>" lines, the format of
// openblas/sgemm_openblas.c, so run.sh can put the two side by side.
//
//	go run ./bench/gemm -threads 2 < bench/gemm/shapes.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
)

func main() {
	threads := flag.Int("threads", 1, "threads for Sgemm")
	minTime := flag.Float64("mintime", 0.5, "seconds to time each shape for (at least 3 calls)")
	only := flag.String("only", "", "time only the shape with this name")
	flag.Parse()
	gemm.SetThreads(*threads)
	rng := rand.New(rand.NewPCG(1, 1))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		var name, ta, tb string
		var m, n, k int
		var beta float32
		if c, _ := fmt.Sscan(line, &name, &ta, &tb, &m, &n, &k, &beta); c != 7 {
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
		call() // warm up
		var times []float64
		start := time.Now()
		for len(times) < 3 || time.Since(start).Seconds() < *minTime {
			t0 := time.Now()
			call()
			times = append(times, time.Since(t0).Seconds())
		}
		slices.Sort(times)
		fmt.Printf("%s %d %.2f\n", name, *threads, 2*float64(m)*float64(n)*float64(k)/times[len(times)/2]/1e9)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}
