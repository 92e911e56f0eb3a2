//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"fmt"
	"os"
)

// runWorker runs one MPI scenario as a rank of an mpirun job and returns the
// exit code.
func runWorker(scenario string) int {
	c, err := OpenMPI()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	var werr error
	switch scenario {
	case "collectives":
		werr = workerCollectives(c)
	default:
		werr = fmt.Errorf("unknown scenario %q", scenario)
	}
	if werr != nil {
		fmt.Printf("rank %d/%d FAIL: %v\n", c.Rank(), c.Size(), werr)
		c.Close()
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Printf("rank %d/%d close: %v\n", c.Rank(), c.Size(), err)
		return 1
	}
	fmt.Printf("rank %d/%d ok\n", c.Rank(), c.Size())
	return 0
}

func workerCollectives(c Comm) error {
	b := rankData(c.Rank(), 10)
	if err := c.AllReduce(b, Sum); err != nil {
		return err
	}
	fmt.Printf("rank %d: %v lib %s\n", c.Rank(), b, c.(*mpiComm).Library())
	return nil
}
