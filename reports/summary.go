package reports

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hilt-project/hilt/harness/catalog"
)

// Summary writes the one-screen end-of-run summary: verdict counts per capability (DI, DC,
// DP, LA, SU, CSA, RT, IN) totalled over the devices, one line per device when there are
// several, every failed or errored check with its one-line reason, and the exit status
// sentence. With WithRedactor, secrets in reasons and errors are redacted first.
func Summary(w io.Writer, run *Run, opts ...Option) error {
	o := collect(opts)
	if run == nil {
		_, err := fmt.Fprintln(w, "hilt: no run to summarise (exit 2)")
		return err
	}
	if o.redactor != nil {
		run = o.redactor.Run(run)
	}
	bw := &errWriter{w: w}
	vc := countRun(run)
	fmt.Fprintf(bw, "hilt: %s, %s in %s: %d pass, %d fail, %d skip, %d error\n\n",
		count(len(run.Devices), "device", "devices"), count(vc.total(), "check", "checks"),
		runDuration(run).Round(time.Millisecond), vc.Pass, vc.Fail, vc.Skip, vc.Error)

	byCap := map[string]*verdictCounts{}
	for _, d := range run.Devices {
		for _, c := range d.Checks {
			c = withDefaults(c)
			if byCap[c.Capability] == nil {
				byCap[c.Capability] = &verdictCounts{}
			}
			byCap[c.Capability].add(c.Verdict)
		}
	}
	caps := catalog.Capabilities()
	nameWidth := len("capability")
	for _, cp := range caps {
		nameWidth = max(nameWidth, 4+len(cp.Name))
	}
	row := func(name string, c verdictCounts) {
		fmt.Fprintf(bw, "  %-*s %5d %5d %5d %6d\n", nameWidth, name, c.Pass, c.Fail, c.Skip, c.Error)
	}
	fmt.Fprintf(bw, "  %-*s %5s %5s %5s %6s\n", nameWidth, "capability", "pass", "fail", "skip", "error")
	for _, cp := range caps {
		c := byCap[cp.ID]
		if c == nil {
			c = &verdictCounts{}
		}
		row(fmt.Sprintf("%-3s %s", cp.ID, cp.Name), *c)
	}
	row("total", vc)

	devices := sortedDevices(run)
	if len(devices) > 1 {
		fmt.Fprintln(bw)
		for _, d := range devices {
			dc := countDevice(d)
			note := ""
			if d.Error != "" {
				note = "; could not be tested"
			}
			fmt.Fprintf(bw, "  %s: %d pass, %d fail, %d skip, %d error%s\n", d.Name, dc.Pass, dc.Fail, dc.Skip, dc.Error, note)
		}
	}

	var problems []string
	for _, e := range run.Errors {
		problems = append(problems, fmt.Sprintf("ERROR\t(run)\t\t%s", oneLine(e)))
	}
	if run.Interrupted {
		problems = append(problems, "ERROR\t(run)\t\tinterrupted before every check finished")
	}
	for _, d := range devices {
		if d.Error != "" {
			problems = append(problems, fmt.Sprintf("ERROR\t%s\t(device)\t%s", d.Name, oneLine(d.Error)))
		}
		for _, c := range sortedChecks(d) {
			if c.Verdict == Pass || c.Verdict == Skip {
				continue
			}
			c = withDefaults(c)
			reason := cmp.Or(c.Reason, c.Title)
			if !c.Verdict.Valid() {
				reason = fmt.Sprintf("invalid verdict %q: %s", c.Verdict, reason)
			}
			problems = append(problems, fmt.Sprintf("%s\t%s\t%s\t%s",
				verdictTag(c.Verdict), d.Name, c.ID, oneLine(reason)))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(bw, "\nFailed and errored:\n")
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		for _, p := range problems {
			fmt.Fprintf(tw, "  %s\n", p)
		}
		tw.Flush()
	}
	_, exit := exitStatus(run)
	fmt.Fprintf(bw, "\n%s%s\n", strings.ToUpper(exit[:1]), exit[1:])
	return bw.err
}

func verdictTag(v Verdict) string {
	if v == Fail {
		return "FAIL"
	}
	return "ERROR"
}

// oneLine is the first line of s, cut to 120 characters.
func oneLine(s string) string {
	const max = 120
	line := firstLine(s)
	if r := []rune(line); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return line
}

// errWriter remembers the first write error, so that a summary of many Fprintf calls can
// report it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
