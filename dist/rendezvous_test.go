package dist

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no TCP on localhost: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Four ranks get rank 0's 128-byte id; rank 0 starts last (the others retry).
func TestDistRendezvousExchangeID(t *testing.T) {
	const n = 4
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	id := make([]byte, 128)
	for i := range id {
		id[i] = byte(i*7 + 3)
	}
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128)
			if r == 0 {
				time.Sleep(300 * time.Millisecond)
				copy(buf, id)
			}
			errs[r] = ExchangeID(context.Background(), addr, r, n, buf, 20*time.Second)
			got[r] = buf
		}()
	}
	wg.Wait()
	for r := range n {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if !bytes.Equal(got[r], id) {
			t.Fatalf("rank %d got a different id", r)
		}
	}
}

func TestDistRendezvousErrors(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	done := make(chan error, 1)
	go func() { done <- ExchangeID(context.Background(), addr, 0, 2, make([]byte, 16), time.Second) }()
	// A rank that disagrees on the world size is refused at once.
	err := ExchangeID(context.Background(), addr, 1, 3, make([]byte, 16), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "world size 3, rank 0 has 2") {
		t.Fatalf("size mismatch: %v", err)
	}
	// Rank 0 gives up at its deadline, naming the missing rank.
	if err := <-done; err == nil || !strings.Contains(err.Error(), "ranks [1] never arrived") {
		t.Fatalf("rank 0 deadline: %v", err)
	}
	// A rank whose rank 0 never comes fails at its deadline.
	err = ExchangeID(context.Background(), addr, 1, 2, make([]byte, 16), 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "before the deadline") {
		t.Fatalf("no rank 0: %v", err)
	}
	l := Launch{MasterAddr: "10.1.2.3", MasterPort: 29500}
	t.Setenv("TORCHELASTIC_RUN_ID", "")
	t.Setenv("SHOGGO_RENDEZVOUS_PORT", "")
	if a, err := RendezvousAddr(l); err != nil || a != "10.1.2.3:29500" {
		t.Fatalf("addr %q %v", a, err)
	}
	t.Setenv("TORCHELASTIC_RUN_ID", "job")
	if a, _ := RendezvousAddr(l); a != "10.1.2.3:29501" {
		t.Fatalf("under torchrun: %q", a)
	}
	t.Setenv("SHOGGO_RENDEZVOUS_PORT", "4000")
	if a, _ := RendezvousAddr(l); a != "10.1.2.3:4000" {
		t.Fatalf("override: %q", a)
	}
	if _, err := RendezvousAddr(Launch{MasterPort: 1}); err == nil {
		t.Fatal("no MASTER_ADDR accepted")
	}
}
