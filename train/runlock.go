package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockFile is the name of the lock a run holds in its output folder.
const LockFile = ".shoggo.lock"

// RunLock is a held run lock: OUT/.shoggo.lock holding the owner's pid,
// host and start time. A lock whose process is gone (same host) is stale
// and is taken over by the next run.
type RunLock struct {
	path string
	once sync.Once
}

// held are the locks this process holds (a second run in the same process
// is refused as a second process would be).
var held sync.Map

// LockRun takes out's lock, creating out. It fails at once if another live
// process (or this one) holds it, naming the holder.
func LockRun(out string) (*RunLock, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Join(out, LockFile))
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(real, LockFile)
	}
	if _, busy := held.Load(abs); busy {
		return nil, fmt.Errorf("%s is in use by another run in this process", out)
	}
	host, _ := os.Hostname()
	body := fmt.Sprintf("pid %d\nhost %s\nstarted %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.WriteString(body)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(abs)
				return nil, werr
			}
			l := &RunLock{path: abs}
			held.Store(abs, l)
			return l, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		stale, who := lockIsStale(abs, host)
		if !stale {
			return nil, fmt.Errorf("%s is in use by another run (%s; lock %s): wait for it, or pick another --out", out, who, abs)
		}
		// The owner is gone: take over (a rename-free remove is fine, as
		// the O_EXCL create above arbitrates between two successors).
		if err := os.Remove(abs); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: could not take the lock %s", out, abs)
}

// lockIsStale reads a lock file and reports whether its owner is gone,
// with a description of the owner.
func lockIsStale(path, host string) (bool, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return os.IsNotExist(err), "unreadable lock"
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			fields[k] = v
		}
	}
	who := fmt.Sprintf("pid %s on %s since %s", fields["pid"], fields["host"], fields["started"])
	pid, err := strconv.Atoi(fields["pid"])
	if err != nil || pid <= 0 {
		// A half-written lock: its writer died between create and write
		// (or is writing now); stale once it is more than a few seconds old.
		if info, err := os.Stat(path); err == nil && time.Since(info.ModTime()) > 5*time.Second {
			return true, "an empty lock"
		}
		return false, "a lock being written"
	}
	if fields["host"] != host {
		return false, who + " (another host: delete the lock file if that run is gone)"
	}
	if pid == os.Getpid() {
		return true, who // this process, but not held: left by an earlier run here
	}
	if err := syscall.Kill(pid, 0); err != nil && errors.Is(err, syscall.ESRCH) {
		return true, who
	}
	if zombie(pid) {
		return true, who + " (exited)"
	}
	return false, who
}

// zombie reports whether pid has exited but was not reaped yet (Linux:
// state Z in /proc/PID/stat), as the ranks of an aborted mpirun job can
// be for a moment.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return i >= 0 && len(f) > 0 && f[0] == "Z"
}

// Release removes the lock (once; later calls do nothing).
func (l *RunLock) Release() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() {
		held.Delete(l.path)
		err = os.Remove(l.path)
	})
	return err
}

// runMarkers are the entries that make a folder a run's output.
var runMarkers = []string{"checkpoints", "metrics.jsonl", "summary.json"}

// ClaimRun takes out's lock and decides what happens to what is there:
// with resume the run continues; with overwrite the previous run's outputs
// (checkpoints, metrics, summary, plot and the extra entries named, paths
// relative to out such as the final model's folder) are removed; otherwise a folder that holds a run is
// refused with a message naming both flags.
func ClaimRun(out string, resume, overwrite bool, extra ...string) (*RunLock, error) {
	if resume && overwrite {
		return nil, fmt.Errorf("--resume and --overwrite exclude each other")
	}
	l, err := LockRun(out)
	if err != nil {
		return nil, err
	}
	if resume {
		return l, nil
	}
	var found []string
	for _, name := range runMarkers {
		if _, err := os.Lstat(filepath.Join(out, name)); err == nil {
			found = append(found, name)
		}
	}
	if len(found) == 0 {
		return l, nil
	}
	if !overwrite {
		l.Release()
		return nil, fmt.Errorf("%s already holds a run (%s): pass --resume to continue it or --overwrite to replace it", out, strings.Join(found, ", "))
	}
	for _, name := range append(append([]string{"loss.png"}, runMarkers...), extra...) {
		if filepath.IsAbs(name) || !filepath.IsLocal(name) {
			continue // only ever remove inside out
		}
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			l.Release()
			return nil, fmt.Errorf("--overwrite: %w", err)
		}
	}
	return l, nil
}
