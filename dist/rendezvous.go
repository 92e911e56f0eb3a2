package dist

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// The rendezvous shares one small secret-free blob (the 128-byte NCCL unique
// id) from rank 0 to the other ranks of a torchrun-style launch, where no
// MPI is running. It is not a transport: after it, NCCL connects the ranks
// itself. Rank 0 listens on the rendezvous port on all interfaces; the other
// ranks dial MASTER_ADDR on that port, retrying until the deadline, and
// introduce themselves (rank, world size, blob length); rank 0 checks them
// and answers with the blob. Rank 0 returns when every other rank got it.

const rendezvousMagic = "SHOGGO-RDV1"

// RendezvousAddr is the address the rendezvous uses for launch l:
// MASTER_ADDR with SHOGGO_RENDEZVOUS_PORT when set; otherwise MASTER_PORT+1
// under torchrun itself (TORCHELASTIC_RUN_ID is set: torchrun's own store
// already listens on MASTER_PORT), else MASTER_PORT.
func RendezvousAddr(l Launch) (string, error) {
	if l.MasterAddr == "" {
		return "", fmt.Errorf("dist: rendezvous: MASTER_ADDR is not set")
	}
	port := l.MasterPort
	if p := os.Getenv("SHOGGO_RENDEZVOUS_PORT"); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil {
			return "", fmt.Errorf("dist: rendezvous: SHOGGO_RENDEZVOUS_PORT=%q: %v", p, err)
		}
		port = v
	} else if os.Getenv("TORCHELASTIC_RUN_ID") != "" && port > 0 {
		port++
	}
	if port <= 0 || port > 65535 {
		return "", fmt.Errorf("dist: rendezvous: MASTER_PORT is not set or invalid (%d)", l.MasterPort)
	}
	return net.JoinHostPort(l.MasterAddr, strconv.Itoa(port)), nil
}

func rdvErr(format string, args ...any) error {
	return &Error{Lib: "rendezvous", Call: "ExchangeID", Msg: fmt.Sprintf(format, args...)}
}

// ExchangeID gives every rank rank 0's blob: on rank 0 blob is the value to
// share; on the others it is filled in (its length must match rank 0's).
// addr is host:port (rank 0 listens on its port on all interfaces).
func ExchangeID(ctx context.Context, addr string, rank, size int, blob []byte, timeout time.Duration) error {
	if size < 1 || rank < 0 || rank >= size {
		return rdvErr("rank %d of %d", rank, size)
	}
	if size == 1 {
		return nil
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if rank == 0 {
		return serveID(ctx, addr, size, blob)
	}
	return fetchID(ctx, addr, rank, size, blob)
}

func serveID(ctx context.Context, addr string, size int, blob []byte) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return rdvErr("address %q: %v", addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", ":"+port)
	if err != nil {
		return rdvErr("rank 0 cannot listen on port %s: %v", port, err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	served := make([]bool, size)
	served[0] = true
	for left := size - 1; left > 0; {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				var missing []int
				for r, ok := range served {
					if !ok {
						missing = append(missing, r)
					}
				}
				return rdvErr("rank 0 waited on port %s until the deadline; ranks %v never arrived", port, missing)
			}
			return rdvErr("accept: %v", err)
		}
		r, err := answer(conn, size, blob, served)
		conn.Close()
		if err != nil {
			// A stray or mismatched client: report it, keep serving.
			fmt.Fprintf(os.Stderr, "dist: rendezvous: rejected a client: %v\n", err)
			continue
		}
		served[r] = true
		left--
	}
	return nil
}

// answer handles one client on rank 0 and returns its rank.
func answer(conn net.Conn, size int, blob []byte, served []bool) (int, error) {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	hdr := make([]byte, len(rendezvousMagic)+12)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return 0, fmt.Errorf("%v: reading its greeting: %v", conn.RemoteAddr(), err)
	}
	reply := func(msg string) {
		if len(msg) > 255 {
			msg = msg[:255]
		}
		b := append([]byte("ERR"), byte(len(msg)))
		conn.Write(append(b, msg...))
	}
	if !bytes.Equal(hdr[:len(rendezvousMagic)], []byte(rendezvousMagic)) {
		return 0, fmt.Errorf("%v: not a shoggo rendezvous client", conn.RemoteAddr())
	}
	p := hdr[len(rendezvousMagic):]
	r, n, l := int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:])), int(binary.BigEndian.Uint32(p[8:]))
	var msg string
	switch {
	case n != size:
		msg = fmt.Sprintf("world size %d, rank 0 has %d", n, size)
	case r <= 0 || r >= size:
		msg = fmt.Sprintf("rank %d outside [1, %d)", r, size)
	case served[r]:
		msg = fmt.Sprintf("rank %d already served (two processes with one RANK?)", r)
	case l != len(blob):
		msg = fmt.Sprintf("expects %d bytes, rank 0 shares %d", l, len(blob))
	}
	if msg != "" {
		reply(msg)
		return 0, fmt.Errorf("%v: %s", conn.RemoteAddr(), msg)
	}
	if _, err := conn.Write(append([]byte("OK"), blob...)); err != nil {
		return 0, fmt.Errorf("%v: sending: %v", conn.RemoteAddr(), err)
	}
	return r, nil
}

func fetchID(ctx context.Context, addr string, rank, size int, blob []byte) error {
	var d net.Dialer
	var last error
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			err = askID(conn, rank, size, blob)
			conn.Close()
			if err == nil {
				return nil
			}
			var de *Error
			if errors.As(err, &de) { // rank 0 refused us: final
				return err
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return rdvErr("rank %d could not get the id from rank 0 at %s before the deadline: %v", rank, addr, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func askID(conn net.Conn, rank, size int, blob []byte) error {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	hdr := make([]byte, 0, len(rendezvousMagic)+12)
	hdr = append(hdr, rendezvousMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(rank))
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(size))
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(blob)))
	if _, err := conn.Write(hdr); err != nil {
		return err
	}
	status := make([]byte, 2)
	if _, err := io.ReadFull(conn, status); err != nil {
		return err
	}
	if string(status) == "ER" {
		b := make([]byte, 2)
		if _, err := io.ReadFull(conn, b); err != nil {
			return err
		}
		msg := make([]byte, b[1])
		io.ReadFull(conn, msg)
		return rdvErr("rank 0 at %s refused rank %d: %s", conn.RemoteAddr(), rank, msg)
	}
	if string(status) != "OK" {
		return fmt.Errorf("unexpected answer %q", status)
	}
	_, err := io.ReadFull(conn, blob)
	return err
}
