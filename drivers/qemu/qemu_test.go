package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		accel string
		want  [][]string // each a run of consecutive arguments
		not   []string
	}{
		{
			name:  "tcg with disks and tap",
			opts:  Options{Name: "dev0", Kernel: "/k", Initramfs: "/i", Append: "hilt.ip=10.0.0.2/30", Disks: []string{"/d/a.img", "/d/b,c.img"}, Tap: "hq0", MAC: "52:54:00:00:00:01"},
			accel: "tcg",
			want: [][]string{
				{"-name", "guest=dev0", "-machine", "q35", "-accel", "tcg", "-cpu", "max"},
				{"-m", "256"},
				{"-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0,115200 hilt.ip=10.0.0.2/30"},
				{"-serial", "pty"},
				{"-qmp", "unix:/run/q.sock"},
				{"-S"},
				{"-drive", "file=/d/a.img,format=raw,if=none,id=disk0,cache=writeback", "-device", "virtio-blk-pci,drive=disk0"},
				{"-drive", "file=/d/b,,c.img,format=raw,if=none,id=disk1,cache=writeback", "-device", "virtio-blk-pci,drive=disk1"},
				{"-netdev", "tap,id=net0,ifname=hq0,script=no,downscript=no", "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,romfile="},
			},
			not: []string{"-no-reboot", "-nographic"},
		},
		{
			name:  "kvm, no network, more memory, extra args",
			opts:  Options{Name: "x", Kernel: "/k", Initramfs: "/i", MemoryMB: 512, ExtraArgs: []string{"-device", "pvpanic"}},
			accel: "kvm",
			want:  [][]string{{"-accel", "kvm", "-cpu", "host"}, {"-m", "512"}, {"-append", "console=ttyS0,115200"}, {"-device", "pvpanic"}},
			not:   []string{"-netdev", "-drive", "-no-reboot"},
		},
		{
			name:  "no reboot: the guest's reboot ends QEMU",
			opts:  Options{Name: "x", Kernel: "/k", Initramfs: "/i", NoReboot: true},
			accel: "tcg",
			want:  [][]string{{"-S", "-no-reboot"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.opts.commandLine(tc.accel, "/run/q.sock")
			for _, w := range tc.want {
				if !containsRun(got, w) {
					t.Errorf("command line lacks %q\ngot %q", w, got)
				}
			}
			for _, n := range tc.not {
				if slices.Contains(got, n) {
					t.Errorf("command line has %q, want none\ngot %q", n, got)
				}
			}
		})
	}
}

func containsRun(args, run []string) bool {
	for i := 0; i+len(run) <= len(args); i++ {
		if slices.Equal(args[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

// TestHostAccel holds the choice of accelerator to what backs /dev/kvm: only hardware KVM
// runs the stock guest kernel.
func TestHostAccel(t *testing.T) {
	const vmx = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n"
	const novmx = "processor\t: 0\nflags\t\t: fpu vme de pse sse2 hypervisor\n"
	const svm = "processor\t: 0\nflags\t\t: fpu svm sse2\n"
	const unreadable = "<a folder>" // an initstate that cannot be read as a file
	intel, amd := "kvm_intel", "kvm_amd"
	tests := []struct {
		name      string
		dev       bool
		modules   []string          // nil with notFolder: the module path is a file
		initstate map[string]string // per module, when set
		notFolder bool
		cpuinfo   string
		want      string
		why       []string // each in the reason, when tcg
	}{
		{"no /dev/kvm", false, []string{"kvm", intel}, nil, false, vmx, "tcg", []string{"open "}},
		{"intel", true, []string{"kvm", intel}, nil, false, vmx, "kvm", nil},
		{"intel module live", true, []string{"kvm", intel}, map[string]string{intel: "live\n"}, false, vmx, "kvm", nil},
		{"amd", true, []string{"kvm", amd}, nil, false, svm, "kvm", nil},
		{"amd module live", true, []string{"kvm", amd}, map[string]string{amd: "live\n"}, false, svm, "kvm", nil},
		{"intel built in, no vmx", true, []string{"kvm", intel, "kvm_pvm"}, nil, false, novmx, "tcg", []string{"shows no vmx flag"}},
		{"intel module not live", true, []string{"kvm", intel}, map[string]string{intel: "coming\n"}, false, vmx, "tcg", []string{"kvm_intel is coming, not live"}},
		{"amd module not live", true, []string{"kvm", amd}, map[string]string{amd: "going\n"}, false, svm, "tcg", []string{"kvm_amd is going, not live"}},
		{"intel initstate unreadable", true, []string{"kvm", intel}, map[string]string{intel: unreadable}, false, vmx, "tcg", []string{"kvm_intel: read ", "initstate"}},
		{"amd without svm", true, []string{"kvm", amd}, nil, false, vmx, "tcg", []string{"shows no svm flag"}},
		{"amd, both built in", true, []string{"kvm", intel, amd}, nil, false, svm, "kvm", nil},
		{"intel, both built in", true, []string{"kvm", intel, amd}, nil, false, vmx, "kvm", nil},
		{"intel not live, amd live", true, []string{"kvm", intel, amd}, map[string]string{intel: "coming\n", amd: "live\n"}, false, svm, "kvm", nil},
		{"both built in, neither flag", true, []string{"kvm", intel, amd}, nil, false, novmx, "tcg",
			[]string{"kvm_intel is present but", "no vmx flag", "kvm_amd is present but", "no svm flag"}},
		{"no flags line", true, []string{"kvm", intel}, nil, false, "processor\t: 0\n", "tcg", []string{"no flags line"}},
		{"pvm", true, []string{"kvm", "kvm_pvm"}, nil, false, novmx, "tcg", []string{"(kvm_pvm loaded, neither kvm_intel nor kvm_amd)"}},
		{"no vendor module", true, []string{"kvm"}, nil, false, vmx, "tcg", []string{"(no KVM vendor module loaded,"}},
		{"module folder not a folder", true, nil, nil, true, vmx, "tcg", []string{"kvm_intel: stat ", "kvm_amd: stat ", "not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dev, modules, cpuinfo := filepath.Join(dir, "kvm"), filepath.Join(dir, "module"), filepath.Join(dir, "cpuinfo")
			if tt.dev {
				if err := os.WriteFile(dev, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.notFolder {
				if err := os.WriteFile(modules, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range tt.modules {
				if err := os.MkdirAll(filepath.Join(modules, m), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for m, st := range tt.initstate {
				p := filepath.Join(modules, m, "initstate")
				var err error
				if st == unreadable {
					err = os.Mkdir(p, 0o755)
				} else {
					err = os.WriteFile(p, []byte(st), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(cpuinfo, []byte(tt.cpuinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			accel, why := hostAccel(dev, modules, cpuinfo)
			if accel != tt.want || (accel == "kvm") != (why == "") {
				t.Errorf("hostAccel = %q, %q; want %q", accel, why, tt.want)
			}
			for _, w := range tt.why {
				if !strings.Contains(why, w) {
					t.Errorf("hostAccel = %q, %q; want a reason holding %q", accel, why, w)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"plain", []string{"qemu", "-m", "256", "file=/a/b.img,format=raw"}, "qemu -m 256 file=/a/b.img,format=raw"},
		{"spaces", []string{"-append", "console=ttyS0 quiet"}, "-append 'console=ttyS0 quiet'"},
		{"quote", []string{"it's"}, `'it'\''s'`},
		{"empty", []string{"romfile", ""}, "romfile ''"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShellQuote(tc.args); got != tc.want {
				t.Errorf("ShellQuote(%q) = %s, want %s", tc.args, got, tc.want)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want error
		text string
	}{
		{"no qemu", Options{Binary: "hilt-no-such-qemu", Kernel: kernel}, ErrNoQEMU, "apt-get install qemu-system-x86"},
		{"no kernel", Options{Binary: "true", Kernel: filepath.Join(dir, "nope")}, ErrNoKernel, "make qemu-image"},
		{"no initramfs", Options{Binary: "true", Kernel: kernel, Initramfs: filepath.Join(dir, "nope.cpio")}, ErrNoInitramfs, "nope.cpio"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Name = "dev9"
			vm, err := Start(context.Background(), tc.opts)
			if vm != nil {
				t.Errorf("Start returned a VM with error %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start: got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "dev9") {
				t.Errorf("error %q: want it to name dev9 and say %q", err, tc.text)
			}
		})
	}
}

// fakeQMP serves the QMP greeting and answers commands on conn as answer says.
func fakeQMP(t *testing.T, conn net.Conn, answer func(cmd string) string) {
	t.Helper()
	go func() {
		defer conn.Close()
		if _, err := conn.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n")); err != nil {
			return
		}
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(line, &req); err != nil {
				return
			}
			body := answer(req.Execute)
			if body == "" {
				return // hang up, as QEMU does when it quits
			}
			// An event first: the client must not take it for the answer.
			conn.Write([]byte(`{"event": "RESUME", "timestamp": {}}` + "\n"))
			conn.Write([]byte(`{"id": ` + string(req.ID) + `, ` + body + "}\n"))
		}
	}()
}

func TestQMP(t *testing.T) {
	client, server := net.Pipe()
	fakeQMP(t, server, func(cmd string) string {
		switch cmd {
		case "qmp_capabilities":
			return `"return": {}`
		case "query-status":
			return `"return": {"running": true, "status": "running"}`
		case "quit":
			return ""
		default:
			return `"error": {"class": "CommandNotFound", "desc": "The command ` + cmd + ` has not been found"}`
		}
	})
	var events []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := newQMP(ctx, "dev0", client, func(name string, _ json.RawMessage) { events = append(events, name) })
	if err != nil {
		t.Fatalf("newQMP: %v", err)
	}
	defer q.close()

	raw, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		t.Fatalf("query-status: %v", err)
	}
	if !strings.Contains(string(raw), `"running"`) {
		t.Errorf("query-status: got %s, want the status", raw)
	}

	_, err = q.execute(ctx, "bogus", map[string]any{"x": 1})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || qe.Command != "bogus" || qe.VM != "dev0" {
		t.Errorf("bogus: got %v, want a *QMPError CommandNotFound naming dev0 and bogus", err)
	}

	if _, err := q.execute(ctx, "quit", nil); !errors.Is(err, errQMPClosed) {
		t.Errorf("quit: got %v, want errQMPClosed when the monitor hangs up", err)
	}
	if _, err := q.execute(ctx, "query-status", nil); !errors.Is(err, errQMPClosed) {
		t.Errorf("after hang-up: got %v, want errQMPClosed", err)
	}
	if len(events) == 0 || events[0] != "RESUME" {
		t.Errorf("events: got %q, want RESUME events passed on", events)
	}
}

func TestConsole(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	path := slave.Name()
	slave.Close()

	var transcript strings.Builder
	c, err := openConsole("dev0", path, &syncWriter{w: &transcript})
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	never := func() error { return nil }

	master.Write([]byte("[    0.000000] Linux version 6.1\r\nboot line\r\nrefdev ready\r\nrefdev> "))
	got, err := c.expect(ctx, regexp.MustCompile(`^refdev ready$`), never)
	if err != nil || got != "refdev ready" {
		t.Fatalf("expect ready: got %q, %v", got, err)
	}
	// Consumed lines are not matched again.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	_, err = c.expect(short, regexp.MustCompile(`boot line`), never)
	var ce *ConsoleError
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expect consumed line: got %v, want a *ConsoleError with DeadlineExceeded", err)
	}
	if ce.VM != "dev0" || !slices.Contains(ce.Tail, "refdev ready") || !strings.Contains(err.Error(), "refdev> ") {
		t.Errorf("timeout error %q: want the VM name and the last lines, prompt included", err)
	}

	if err := c.send(ctx, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _ := master.Read(buf)
	if got := string(buf[:n]); got != "ping\n" {
		t.Errorf("sent: got %q, want %q", got, "ping\n")
	}
	master.Write([]byte("OK {\"pong\":true}\r\n"))
	if got, err := c.expect(ctx, regexp.MustCompile(`OK `), never); err != nil || !strings.HasPrefix(got, "refdev> OK ") {
		t.Errorf("answer: got %q, %v; want the line after the prompt", got, err)
	}

	c.release()
	if _, err := c.expect(ctx, regexp.MustCompile(`x`), never); !errors.Is(err, ErrConsoleReleased) {
		t.Errorf("expect after release: got %v, want ErrConsoleReleased", err)
	}
	if err := c.send(ctx, "x"); !errors.Is(err, ErrConsoleReleased) {
		t.Errorf("send after release: got %v, want ErrConsoleReleased", err)
	}
	if !strings.HasPrefix(transcript.String(), "[    0.000000] Linux version 6.1\r\n") {
		t.Errorf("transcript starts %q, want every byte from the first", transcript.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
