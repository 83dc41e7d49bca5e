package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Load is the system's load average (1, 5 and 15 minutes).
type Load [3]float64

// ReadLoad reads /proc/loadavg.
func ReadLoad() (Load, error) {
	var l Load
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l, fmt.Errorf("bench: load average: %w", err)
	}
	if _, err := fmt.Sscan(string(b), &l[0], &l[1], &l[2]); err != nil {
		return l, fmt.Errorf("bench: load average %q: %w", bytes.TrimSpace(b), err)
	}
	return l, nil
}

func (l Load) String() string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// Number is what Median takes.
type Number interface {
	~int | ~int64 | ~float64
}

// Median returns the median of xs (the mean of the middle two for an even count), or
// zero for none.
func Median[T Number](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// kbField returns the value of a "Name:   1234 kB" line of a /proc file (not the first
// line), in bytes.
func kbField(b []byte, name string) (int64, bool) {
	i := bytes.Index(b, []byte("\n"+name))
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1+len(name):])
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, false
	}
	return v << 10, true
}

// Machine describes the computer the figures were taken on.
type Machine struct {
	CPU      string
	Cores    int
	MemTotal int64 // bytes
	Kernel   string
	OS       string
	Go       string
}

// ReadMachine reads /proc and /etc for a description of this machine.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: "?", Kernel: "?", OS: "?"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if v, ok := kbField(append([]byte("\n"), b...), "MemTotal:"); ok {
			m.MemTotal = v
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}
