package dist_test

import (
	"fmt"
	"sync"

	"github.com/shoggo/shoggo/dist"
)

// Two in-process ranks all-reduce their gradients in buckets while
// "backward" marks them final, last layer first. Under mpirun the same code
// runs with c, _ := dist.FromEnv() in each process.
func Example() {
	comms := dist.NewLocal(2)
	var wg sync.WaitGroup
	out := make([][]float32, 2)
	for _, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grads := [][]float32{{1, 2}, {3}, {4, 5, 6}} // forward order
			for _, g := range grads {
				for i := range g {
					g[i] *= float32(c.Rank() + 1)
				}
			}
			bk, err := dist.NewBucketer(c, grads, dist.BucketOptions{CapBytes: 8, Op: dist.Avg})
			if err != nil {
				panic(err)
			}
			for i := len(grads) - 1; i >= 0; i-- { // backward
				bk.Ready(i)
			}
			if err := bk.WaitAll(); err != nil {
				panic(err)
			}
			out[c.Rank()] = append(append(grads[0], grads[1]...), grads[2]...)
		}()
	}
	wg.Wait()
	fmt.Println(out[0], out[1])
	lo, hi := dist.StepItems(3, 4, 1, 2) // step 3, 4 items per rank, rank 1 of 2
	fmt.Println(lo, hi)
	// Output:
	// [1.5 3 4.5 6 7.5 9] [1.5 3 4.5 6 7.5 9]
	// 28 32
}
