package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/harness/session"
	"github.com/hilt-project/hilt/reports"
	"github.com/hilt-project/hilt/suites"
)

// CheckOptions are what the parent hands a child run of one unit.
type CheckOptions struct {
	Profile     string
	Instance    string
	Out         string
	Pins        string // JSON []session.Pin of the whole fleet
	LabelFilter string
	Seed        int64
	Result      string // where the child writes its DeviceResult as JSON
	Progress    io.Writer
	Log         io.Writer
}

// progressFD is the descriptor of the progress pipe in a check process: hilt run passes
// its writing end as the first of cmd.ExtraFiles.
const progressFD = 3

// ProgressPipe returns the progress pipe hilt run handed this check process, or nil when
// there is none (the process was started by hand). It marks the descriptor close-on-exec,
// which an inherited one is not: a program the checks start would otherwise hold the pipe
// open after this process ends.
func ProgressPipe() *os.File { return inheritedPipe(progressFD, "progress") }

// inheritedPipe returns the open descriptor fd as a file, marked close-on-exec, or nil.
func inheritedPipe(fd int, name string) *os.File {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// Check runs the suites against one unit and writes its results. The returned error
// is a fault that kept the suites from running at all; it is also recorded in the
// result file so the parent can report it.
func Check(ctx context.Context, o CheckOptions) error {
	res := reports.DeviceResult{Name: o.Instance}
	err := check(ctx, o, &res)
	if err != nil {
		res.Error = err.Error()
	}
	if werr := writeJSON(o.Result, res); werr != nil && err == nil {
		err = werr
	}
	return err
}

func check(ctx context.Context, o CheckOptions, res *reports.DeviceResult) error {
	p, err := profile.Load(o.Profile)
	if err != nil {
		return err
	}
	var fleet []session.Pin
	if err := readJSON(o.Pins, &fleet); err != nil {
		return fmt.Errorf("read identity pins: %w", err)
	}
	var opts []session.Option
	for _, pin := range fleet {
		if pin.Name == o.Instance {
			opts = append(opts, session.WithPin(pin))
		}
	}
	if o.Log != nil {
		opts = append(opts, session.WithLog(o.Log))
	}
	s, err := session.Open(ctx, p, o.Instance, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	in, _ := p.Instance(o.Instance)
	res.ID = s.ID
	res.BootToReady = in.BootToReady.Duration
	if info, err := s.Info(ctx, "console"); err == nil {
		res.FirmwareVersion = info.FirmwareVersion
	}
	env := &suites.Env{S: s, Fleet: fleet, Out: o.Out, Log: o.Log, Backend: backendFor(p)}
	if p.Update.SigningKey != "" {
		k, err := image.LoadKey(p.Resolve(p.Update.SigningKey))
		if err != nil {
			return err
		}
		env.SigningKey = k
	}
	results, err := suites.Run(ctx, env, suites.Config{LabelFilter: o.LabelFilter, Seed: o.Seed, Progress: o.Progress})
	res.Checks = results
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
