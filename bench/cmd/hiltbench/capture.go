package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/hilt-project/hilt/bench"
	"github.com/hilt-project/hilt/bench/capgen"
	"github.com/hilt-project/hilt/drivers/netprobe"
)

// analysisRun is one measured search of the capture for MQTT passwords.
type analysisRun struct {
	Usage bench.Usage
	Creds []capgen.Cred // sorted
	Inner time.Duration // AnalyzeFile's own time (hilt only)
	Err   error
}

// captureResult is the capture analysis section.
type captureResult struct {
	Path    string
	Size    int64
	SHA256  string
	GenTime time.Duration
	Opts    capgen.Options
	Summary capgen.Summary
	Hilt    []analysisRun
	Tshark  []analysisRun
	// Profile is the top of a CPU profile of one more AnalyzeFile run (pprof -top).
	Profile string
	Err     error
}

// analyzeChildOut is what `hiltbench __analyze` prints.
type analyzeChildOut struct {
	Packets   int64         `json:"packets"`
	Flows     int           `json:"flows"`
	Creds     []capgen.Cred `json:"creds"`
	ElapsedNS int64         `json:"elapsed_ns"`
}

// analyzeChild is `hiltbench __analyze [-cpuprofile F] FILE`: netprobe.AnalyzeFile, and
// the passwords of the cleartext MQTT CONNECTs it found (those tshark's mqtt.passwd
// shows: user name and password present).
func analyzeChild(args []string) error {
	fs := flag.NewFlagSet("__analyze", flag.ContinueOnError)
	prof := fs.String("cpuprofile", "", "write a CPU profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: hiltbench __analyze [-cpuprofile F] FILE")
	}
	if *prof != "" {
		stop, err := startProfile(*prof)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	a, err := netprobe.AnalyzeFile(ctx, fs.Arg(0), netprobe.AnalyzeOptions{})
	if err != nil {
		return err
	}
	out := analyzeChildOut{Packets: a.Packets, Flows: len(a.Flows), ElapsedNS: time.Since(t0).Nanoseconds()}
	for _, c := range a.Creds {
		if c.HasUsername && c.HasPassword {
			out.Creds = append(out.Creds, capgen.Cred{Src: c.Src, Username: c.Username, Password: c.Password})
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// genCmd is `hiltbench gen -o FILE [-packets N] [-seed S]`.
func genCmd(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	out := fs.String("o", "capture.pcapng", "file to write")
	packets := fs.Int("packets", capgen.DefaultPackets, "packets (at least)")
	seed := fs.Uint64("seed", capgen.DefaultSeed, "seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := capgen.WriteFile(*out, capgen.Options{Packets: *packets, Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d packets, %d bytes of frames, flows %v, %d passwords (split: %s)\n", *out, s.Packets, s.Bytes, s.Flows, len(s.Creds), s.Split)
	return nil
}

// runCapture generates the capture, then searches it for MQTT passwords with
// netprobe.AnalyzeFile and with tshark, alternately.
func runCapture(ctx context.Context, cfg config) *captureResult {
	res := &captureResult{Path: filepath.Join(cfg.work, "mixed.pcapng"), Opts: capgen.Options{Packets: cfg.packets, Seed: cfg.seed}}
	t0 := time.Now()
	res.Summary, res.Err = capgen.WriteFile(res.Path, res.Opts)
	res.GenTime = time.Since(t0)
	if res.Err != nil {
		return res
	}
	res.Size, res.SHA256, res.Err = fileDigest(res.Path)
	if res.Err != nil {
		return res
	}
	cfg.logf("capture: %s, %d packets, %s, generated in %s", res.Path, res.Summary.Packets, fmtMB(res.Size), fmtDur(res.GenTime))
	for i := range max(cfg.analyzeRuns, cfg.tsharkRuns) {
		if ctx.Err() != nil {
			break
		}
		if i < cfg.analyzeRuns {
			r := analyzeHilt(ctx, cfg, res.Path, "")
			res.Hilt = append(res.Hilt, r)
			cfg.logf("capture %d: AnalyzeFile %s, %d passwords, peak RSS %s, load %.2f (%v)", i+1, fmtDur(r.Usage.Wall), len(r.Creds), fmtMB(r.Usage.MaxRSS), r.Usage.LoadBefore[0], r.Err)
		}
		if i < cfg.tsharkRuns {
			r := analyzeTshark(ctx, res.Path)
			res.Tshark = append(res.Tshark, r)
			cfg.logf("capture %d: tshark %s, %d passwords, peak RSS %s, load %.2f (%v)", i+1, fmtDur(r.Usage.Wall), len(r.Creds), fmtMB(r.Usage.MaxRSS), r.Usage.LoadBefore[0], r.Err)
		}
	}
	if cfg.profile && ctx.Err() == nil {
		res.Profile = profileAnalysis(ctx, cfg, res.Path)
	}
	return res
}

func fileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func analyzeHilt(ctx context.Context, cfg config, path, cpuprofile string) analysisRun {
	var r analysisRun
	args := []string{"__analyze"}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	cmd := exec.Command(cfg.self, append(args, path)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	r.Usage, r.Err = bench.Run(ctx, cmd)
	if r.Err != nil {
		r.Err = fmt.Errorf("%w: %s", r.Err, strings.TrimSpace(errb.String()))
		return r
	}
	var o analyzeChildOut
	if err := json.Unmarshal([]byte(out.String()), &o); err != nil {
		r.Err = fmt.Errorf("hiltbench __analyze printed %.200q: %w", out.String(), err)
		return r
	}
	r.Creds, r.Inner = o.Creds, time.Duration(o.ElapsedNS)
	slices.SortFunc(r.Creds, capgen.Cred.Compare)
	return r
}

// analyzeTshark runs the command of the issue: the credentials of every MQTT CONNECT
// that carries a password, one line each.
func analyzeTshark(ctx context.Context, path string) analysisRun {
	var r analysisRun
	cmd := exec.Command("tshark", "-r", path, "-Y", "mqtt.passwd", "-T", "fields", "-e", "ip.src", "-e", "mqtt.username", "-e", "mqtt.passwd")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	r.Usage, r.Err = bench.Run(ctx, cmd)
	if r.Err != nil {
		r.Err = fmt.Errorf("%w: %s", r.Err, lastLines(errb.String(), 3))
		return r
	}
	r.Creds, r.Err = parseTshark(out.String())
	return r
}

// parseTshark reads the lines of `-T fields -e ip.src -e mqtt.username -e mqtt.passwd`,
// sorted.
func parseTshark(out string) ([]capgen.Cred, error) {
	var creds []capgen.Cred
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return creds, fmt.Errorf("tshark printed %q: want 3 tab-separated fields", sc.Text())
		}
		src, err := netip.ParseAddr(f[0])
		if err != nil {
			return creds, fmt.Errorf("tshark printed %q: %w", sc.Text(), err)
		}
		creds = append(creds, capgen.Cred{Src: src, Username: f[1], Password: f[2]})
	}
	slices.SortFunc(creds, capgen.Cred.Compare)
	return creds, nil
}

// profileAnalysis runs AnalyzeFile once more with a CPU profile and returns the top of
// its profile.
func profileAnalysis(ctx context.Context, cfg config, path string) string {
	prof := filepath.Join(cfg.work, "analyze.cpu.pprof")
	if r := analyzeHilt(ctx, cfg, path, prof); r.Err != nil {
		return "profile run failed: " + r.Err.Error()
	}
	return pprofTop(ctx, cfg, cfg.self, prof)
}

// pprofTop returns the top functions of a CPU profile of the executable bin (`go tool
// pprof -top`), without the lines naming the file and the build.
func pprofTop(ctx context.Context, cfg config, bin, prof string) string {
	out, err := exec.CommandContext(ctx, cfg.goCmd, "tool", "pprof", "-top", "-nodecount=15", bin, prof).Output()
	if err != nil {
		return "go tool pprof failed: " + err.Error()
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Type:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// startProfile starts a CPU profile into path; the returned function ends it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
