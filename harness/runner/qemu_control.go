package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hilt-project/hilt/harness/emu"
)

// The bench's control socket.
//
// hilt run owns the emulated units (their QEMU processes, through harness/emu); the suites
// run in child processes, one per unit. A check that cuts a unit's power or reads its disk
// asks the parent over a unix socket, named by the runtime profile's qemu.control. One
// request a connection, one JSON object a line:
//
//	→ {"op":"power-cut","unit":"dev1"}
//	← {"ok":true}             the power was cut and is back on: the unit boots (the check
//	                          waits for its ready line, or finds it never comes)
//	→ {"op":"storage","unit":"dev1"}
//	← {"ok":true,"path":"…/dev1/data.img"}
//	                          the unit is shut down, its file systems unmounted: the image
//	                          is the unit's raw flash, free blocks included
//	→ {"op":"done"}
//	← {"ok":true}             the unit booted again and is ready
//	→ {"op":"files","unit":"dev1"}
//	← {"ok":true,"path":"…/dev1/files"}
//	                          as storage, with the data disk's file system mounted there
//	                          (read-write, always the same folder for a unit); then done,
//	                          which unmounts it before the unit starts again
//	← {"error":"…"}           what failed, instead of any answer above
//
// A connection that closes while a unit's storage is out restarts the unit all the same.
// Requests for one unit run one at a time, the restart after a power cut included.

// Control operations.
const (
	opPowerCut = "power-cut"
	opStorage  = "storage"
	opFiles    = "files"
	opDone     = "done"
)

// powerCutTimeout bounds the power cut itself (QMP quit until QEMU has exited).
const powerCutTimeout = 30 * time.Second

// errBenchControl is wrapped by an error answer of the bench's control socket.
var errBenchControl = errors.New("the bench refused")

type ctlRequest struct {
	Op   string `json:"op"`
	Unit string `json:"unit,omitempty"`
}

type ctlReply struct {
	OK    bool   `json:"ok,omitempty"`
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

// unitPower is what the control socket needs of the bench; *emu.Bench has it.
type unitPower interface {
	PowerCut(ctx context.Context, name string) error
	ShutdownForScan(ctx context.Context, name string) error
	Restart(ctx context.Context, name string) error
	Unit(name string) (emu.Unit, bool)
}

var _ unitPower = (*emu.Bench)(nil)

// unitStats counts what the control socket did to one unit.
type unitStats struct {
	powerCuts, scans int
	readyRestarts    int           // restarts by the harness that reached the ready line
	restarts         time.Duration // their time from power-on to ready, summed
	failedRestarts   int
}

// benchControl serves a bench's control socket.
type benchControl struct {
	ln    net.Listener
	bench unitPower
	log   io.Writer

	wg sync.WaitGroup // connections and background restarts

	mu    sync.Mutex // guards what follows
	busy  map[string]*sync.Mutex
	conns map[net.Conn]bool
	stats map[string]*unitStats
}

// serveControl listens on path and serves requests until close. Operations run under ctx.
func serveControl(ctx context.Context, path string, bench unitPower, log io.Writer) (*benchControl, error) {
	if log == nil {
		log = io.Discard
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("bench control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("bench control socket: %w", err)
	}
	s := &benchControl{ln: ln, bench: bench, log: log,
		busy: map[string]*sync.Mutex{}, conns: map[net.Conn]bool{}, stats: map[string]*unitStats{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(ctx, c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return s, nil
}

// close stops accepting and drops every connection; operations in progress end with their
// context (cancel it) or the bench (close it). wait waits for them.
func (s *benchControl) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *benchControl) wait() { s.wg.Wait() }

func (s *benchControl) logf(format string, a ...any) {
	fmt.Fprintf(s.log, "%s control: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// unit returns the lock that serialises operations on the unit, and its counters.
func (s *benchControl) unit(name string) (*sync.Mutex, *unitStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[name] == nil {
		s.busy[name], s.stats[name] = &sync.Mutex{}, &unitStats{}
	}
	return s.busy[name], s.stats[name]
}

// statsOf returns a copy of the unit's counters.
func (s *benchControl) statsOf(name string) unitStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[name]; st != nil {
		return *st
	}
	return unitStats{}
}

func (s *benchControl) count(name string, f func(*unitStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.stats[name])
}

func (s *benchControl) handle(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(c)
	var req ctlRequest
	if err := readMsg(r, &req); err != nil {
		if !errors.Is(err, io.EOF) {
			s.logf("bad request: %v", err)
			writeMsg(c, ctlReply{Error: err.Error()})
		}
		return
	}
	if _, ok := s.bench.Unit(req.Unit); !ok {
		writeMsg(c, ctlReply{Error: fmt.Sprintf("%q: %v", req.Unit, emu.ErrUnknownUnit)})
		return
	}
	switch req.Op {
	case opPowerCut:
		s.powerCut(ctx, c, req.Unit)
	case opStorage:
		s.storage(ctx, c, r, req.Unit, false)
	case opFiles:
		s.storage(ctx, c, r, req.Unit, true)
	default:
		writeMsg(c, ctlReply{Error: fmt.Sprintf("unknown operation %q: want %s, %s or %s", req.Op, opPowerCut, opStorage, opFiles)})
	}
}

// powerCut cuts the unit's power and powers it on again. It answers once the unit is
// booting, not when it is ready: a unit that does not boot again is the check's finding,
// which the check's own wait for the ready line reports. The restart holds the unit's
// lock, so the next request for the unit waits for it. A unit that a failed power cut left
// off is powered on all the same.
func (s *benchControl) powerCut(ctx context.Context, c net.Conn, name string) {
	busy, _ := s.unit(name)
	busy.Lock()
	// A deadline of its own: the QMP quit must not hang, whatever the request's context.
	pctx, cancel := context.WithTimeout(ctx, powerCutTimeout)
	err := s.bench.PowerCut(pctx, name)
	cancel()
	if err != nil {
		s.logf("%s: power cut: %v", name, err)
	} else {
		s.count(name, func(st *unitStats) { st.powerCuts++ })
		s.logf("%s: power cut; powering on", name)
	}
	if u, _ := s.bench.Unit(name); u.Running {
		busy.Unlock()
	} else {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer busy.Unlock()
			s.restart(ctx, name, "after a power cut")
		}()
	}
	if err != nil {
		writeMsg(c, ctlReply{Error: err.Error()})
		return
	}
	writeMsg(c, ctlReply{OK: true})
}

// storage shuts the unit down for a scan, hands out its disk image (or, with files, the
// file system on it, mounted), and restarts the unit when the client is done or gone.
func (s *benchControl) storage(ctx context.Context, c net.Conn, r *bufio.Reader, name string, files bool) {
	busy, _ := s.unit(name)
	busy.Lock()
	defer busy.Unlock()
	if err := s.bench.ShutdownForScan(ctx, name); err != nil {
		s.logf("%s: shut down for a scan: %v", name, err)
		if u, _ := s.bench.Unit(name); !u.Running {
			if rerr := s.restart(ctx, name, "after a failed shutdown"); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		writeMsg(c, ctlReply{Error: err.Error()})
		return
	}
	s.count(name, func(st *unitStats) { st.scans++ })
	u, _ := s.bench.Unit(name)
	path := u.DataImage
	if files {
		dir, err := mountImage(ctx, u.DataImage)
		if err != nil {
			s.logf("%s: %v", name, err)
			if rerr := s.restart(ctx, name, "after a failed mount"); rerr != nil {
				err = errors.Join(err, rerr)
			}
			writeMsg(c, ctlReply{Error: err.Error()})
			return
		}
		path = dir
	}
	s.logf("%s: shut down; storage %s handed out", name, path)
	if err := writeMsg(c, ctlReply{OK: true, Path: path}); err == nil {
		var done ctlRequest
		err = readMsg(r, &done)
		switch {
		case err != nil:
			s.logf("%s: the client left without saying done (%v): restarting the unit", name, err)
		case done.Op != opDone:
			s.logf("%s: %q while the storage was out: restarting the unit", name, done.Op)
		}
	}
	if files {
		// Never boot a unit from a disk the host still has mounted.
		if err := unmountImage(context.WithoutCancel(ctx), path); err != nil {
			s.logf("%s: %v; the unit stays off", name, err)
			writeMsg(c, ctlReply{Error: fmt.Sprintf("%v; the unit stays off", err)})
			return
		}
	}
	if err := s.restart(ctx, name, "after a storage scan"); err != nil {
		writeMsg(c, ctlReply{Error: err.Error()})
		return
	}
	writeMsg(c, ctlReply{OK: true})
}

func (s *benchControl) restart(ctx context.Context, name, why string) error {
	if err := s.bench.Restart(ctx, name); err != nil {
		s.count(name, func(st *unitStats) { st.failedRestarts++ })
		s.logf("%s: restart %s: %v", name, why, err)
		return err
	}
	u, _ := s.bench.Unit(name)
	s.count(name, func(st *unitStats) { st.readyRestarts++; st.restarts += u.LastBoot })
	s.logf("%s: ready %v after power-on (%s)", name, u.LastBoot.Round(time.Millisecond), why)
	return nil
}

func readMsg(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		if len(line) == 0 {
			return err
		}
		return fmt.Errorf("incomplete message %q: %w", line, err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("message %q: %w", line, err)
	}
	return nil
}

func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// controlConn is the check side of one connection to the bench's control socket.
type controlConn struct {
	path string
	c    net.Conn
	r    *bufio.Reader
	stop func() bool
}

func dialControl(ctx context.Context, path string) (*controlConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("bench control socket %s: %w", path, err)
	}
	// The context's end unblocks any read or write.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return &controlConn{path: path, c: c, r: bufio.NewReader(c), stop: stop}, nil
}

func (cc *controlConn) close() {
	cc.stop()
	cc.c.Close()
}

// ask sends req and returns the answer; an error answer is an error wrapping
// errBenchControl.
func (cc *controlConn) ask(ctx context.Context, req ctlRequest) (ctlReply, error) {
	var rep ctlReply
	err := writeMsg(cc.c, req)
	if err == nil {
		err = readMsg(cc.r, &rep)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return rep, fmt.Errorf("bench control socket %s: %s %s: %w", cc.path, req.Op, req.Unit, err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("%w: %s", errBenchControl, rep.Error)
	}
	return rep, nil
}

// controlPowerCut asks the bench to cut the unit's power and power it on again.
func controlPowerCut(ctx context.Context, path, unit string) error {
	cc, err := dialControl(ctx, path)
	if err != nil {
		return err
	}
	defer cc.close()
	_, err = cc.ask(ctx, ctlRequest{Op: opPowerCut, Unit: unit})
	return err
}

// controlStorage asks the bench to shut the unit down, runs fn on its disk image (op
// storage) or on its file system (op files), and has the unit started again; it returns
// once the unit is ready.
func controlStorage(ctx context.Context, path, op, unit string, fn func(string) error) error {
	cc, err := dialControl(ctx, path)
	if err != nil {
		return err
	}
	defer cc.close()
	rep, err := cc.ask(ctx, ctlRequest{Op: op, Unit: unit})
	if err != nil {
		return err
	}
	ferr := fn(rep.Path)
	if _, err := cc.ask(ctx, ctlRequest{Op: opDone}); err != nil {
		return errors.Join(ferr, fmt.Errorf("%s: start again after the storage access: %w", unit, err))
	}
	return ferr
}
