package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hilt-project/hilt/fixtures/refdev"
	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/sim"
	"github.com/hilt-project/hilt/internal/outwatch"
)

// Environment variables hilt sim reads for secrets that should not be on a command line.
const (
	envBrokerPassword = "HILT_BROKER_PASSWORD"     // the harness account's password, if the URL has none
	envDeviceAccounts = "HILT_BROKER_DEVICE_CREDS" // user:pass[,user:pass...], as --broker-device
)

// simFlags are hilt sim's command line.
type simFlags struct {
	devices        int
	flaws          []string
	brokerURL      string
	brokerCA       string
	brokerDevices  []string
	mosquitto      bool
	dir            string
	keep           bool
	loopback       bool
	listFlaws      bool
	json           bool
	bootTimeoutSec int
}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Start simulated reference devices to explore by hand",
		Long: `Start simulated reference devices, each in its own network namespace with a pty as
its console, an MQTT broker (embedded by default), and a device profile for them; print how
to reach everything, then wait until Ctrl-C, SIGTERM, a closed terminal (SIGHUP; not
under nohup) or a closed output pipe, and stop everything.

Without root (or where network namespaces are refused) the devices run on loopback
addresses of the host instead: hilt says so, ports that also answer on a control address
cannot be attributed to a device, and packet capture is not possible.

An external broker: --broker mqtts://user:pass@host:port (the user is the harness account;
the password may come from $` + envBrokerPassword + ` instead) with --broker-ca FILE; device accounts
with --broker-device user:pass (once for all devices or once per device) or
$` + envDeviceAccounts + `; without them the devices use the harness account.

Exit codes: 0 stopped by one of those; 2 bad input, a bench that did not start, or a
device that exited on its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.listFlaws {
				return printFlaws(cmd.OutOrStdout(), f.json)
			}
			if f.json {
				return errors.New("--json goes with --list-flaws")
			}
			opts, err := f.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runSim(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.devices, "devices", sim.DefaultDevices, "number of simulated devices (1..64)")
	fl.StringArrayVar(&f.flaws, "flaw", nil, "start every device with this flaw (repeatable; see --list-flaws)")
	f.addBrokerFlags(fl)
	fl.StringVar(&f.dir, "dir", "", "run folder (empty or new; kept); default: a temporary folder removed at exit")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary run folder at exit")
	fl.IntVar(&f.bootTimeoutSec, "boot-timeout", int(sim.DefaultBootTimeout.Seconds()), "seconds each device may take to boot")
	fl.BoolVar(&f.listFlaws, "list-flaws", false, "list the reference device's flaws and exit")
	fl.BoolVar(&f.json, "json", false, "with --list-flaws: print JSON")
	return cmd
}

// addBrokerFlags registers the flags that choose the broker and the network of simulated
// devices; hilt run takes them too.
func (f *simFlags) addBrokerFlags(fl *pflag.FlagSet) {
	fl.StringVar(&f.brokerURL, "broker", "", "external MQTT broker URL (mqtts://user:pass@host:port); default: the embedded broker")
	fl.StringVar(&f.brokerCA, "broker-ca", "", "CA certificate (PEM) of the external broker")
	fl.StringArrayVar(&f.brokerDevices, "broker-device", nil, "device account on the external broker, user:pass (once for all, or once per device)")
	fl.BoolVar(&f.mosquitto, "mosquitto", false, "start a private Mosquitto instead of the embedded broker")
	fl.BoolVar(&f.loopback, "loopback", false, "use loopback addresses even where network namespaces can be made")
}

// options checks the flags and turns them into bench options.
func (f *simFlags) options(progress io.Writer) (sim.Options, error) {
	o := sim.Options{
		Devices:      f.devices,
		Flaws:        f.flaws,
		BrokerURL:    f.brokerURL,
		BrokerCAFile: f.brokerCA,
		Mosquitto:    f.mosquitto,
		Dir:          f.dir,
		KeepDir:      f.keep,
		Loopback:     f.loopback,
		Log:          progress,
	}
	if f.devices < 1 || f.devices > 64 {
		return o, fmt.Errorf("--devices %d: want 1..64", f.devices)
	}
	if f.bootTimeoutSec < 1 {
		return o, fmt.Errorf("--boot-timeout %d: want at least 1 second", f.bootTimeoutSec)
	}
	o.BootTimeout = time.Duration(f.bootTimeoutSec) * time.Second
	known := map[string]bool{}
	for _, fl := range refdev.Flaws() {
		known[fl.Name] = true
	}
	for _, name := range f.flaws {
		if !known[name] {
			return o, fmt.Errorf("--flaw %q: no such flaw (hilt sim --list-flaws lists them)", name)
		}
	}
	if f.brokerURL == "" {
		if f.brokerCA != "" || len(f.brokerDevices) > 0 {
			return o, errors.New("--broker-ca and --broker-device go with --broker")
		}
		return o, nil
	}
	if f.mosquitto {
		return o, errors.New("--broker and --mosquitto exclude each other")
	}
	u, err := broker.ParseURL(f.brokerURL)
	if err != nil {
		return o, fmt.Errorf("--broker: %w", err)
	}
	if u.Username != "" && u.Password == "" {
		if pw := os.Getenv(envBrokerPassword); pw != "" {
			pu, err := url.Parse(f.brokerURL)
			if err != nil {
				return o, fmt.Errorf("--broker: %w", err)
			}
			pu.User = url.UserPassword(u.Username, pw)
			o.BrokerURL = pu.String()
		}
	}
	creds := f.brokerDevices
	if len(creds) == 0 && os.Getenv(envDeviceAccounts) != "" {
		creds = strings.Split(os.Getenv(envDeviceAccounts), ",")
	}
	for _, c := range creds {
		user, pass, ok := strings.Cut(strings.TrimSpace(c), ":")
		if !ok || user == "" || pass == "" {
			return o, errors.New("--broker-device: want user:pass")
		}
		o.DeviceBrokerAccounts = append(o.DeviceBrokerAccounts, broker.Account{Username: user, Password: pass})
	}
	return o, nil
}

// runSim starts the bench, prints how to reach it, and waits for a signal or a device exit.
func runSim(parent context.Context, opts sim.Options, stdout, stderr io.Writer) error {
	if parent == nil {
		parent = context.Background()
	}
	// A closed terminal (SIGHUP) or output pipe stops the bench cleanly too; a SIGPIPE
	// does not (a device that reboots while the broker writes to it raises one).
	ctx, stop := signal.NotifyContext(parent, stopSignals()...)
	defer stop()
	ctx, stopWatch := outwatch.Context(ctx, outputFiles(stdout, stderr)...)
	defer stopWatch()
	b, err := sim.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "hilt sim: interrupted while starting; everything started is stopped")
			return exitError{2}
		}
		return fmt.Errorf("simulated bench: %w", err)
	}
	printBench(stdout, b)
	werr := b.Wait(ctx)
	if errors.Is(context.Cause(ctx), outwatch.ErrOutputClosed) {
		fmt.Fprintf(stderr, "hilt sim: %v\n", outwatch.ErrOutputClosed)
	}
	fmt.Fprintln(stderr, "hilt sim: stopping")
	cerr := b.Close()
	var ee *sim.ExitError
	switch {
	case errors.As(werr, &ee):
		// Every device that exited on its own before the bench stopped, the first
		// (which ended the wait) among them.
		for _, e := range b.Exits() {
			fmt.Fprintf(stderr, "hilt sim: %v\n", e)
		}
		if cerr != nil {
			fmt.Fprintf(stderr, "hilt sim: stop: %v\n", cerr)
		}
		return exitError{2}
	case cerr != nil:
		return fmt.Errorf("stop the bench: %w", cerr)
	}
	return nil
}

// printBench tells how to reach every device and the broker.
func printBench(w io.Writer, b *sim.Bench) {
	p := b.Profile()
	fmt.Fprintf(w, "hilt sim: %d device(s) up in %v\n", len(b.Devices()), b.StartTime().Round(time.Millisecond))
	if fb := b.Fallback(); fb != nil {
		fmt.Fprintf(w, "\nNOTICE: %v\n", fb)
	}
	host, port := brokerHostPort(p.Broker.URL)
	fmt.Fprintf(w, "\nbroker   %s %s (CA %s)\n", b.BrokerKind(), p.Broker.URL, p.Broker.CAFile)
	fmt.Fprintf(w, "         harness account %s / %s\n", p.Broker.Username, p.Broker.Password)
	for _, d := range b.Devices() {
		fmt.Fprintf(w, "\n%s  %s  PID %d, ready %v after start\n", d.Name, d.ID, d.PID, d.BootToReady.Round(time.Millisecond))
		fmt.Fprintf(w, "  console  picocom --echo -b 115200 %s   (then: login %s %s)\n", d.SerialPath, d.Admin.User, d.Admin.Pass)
		if d.Namespace != "" {
			fmt.Fprintf(w, "  network  %s in namespace %s; host side %s %s (tcpdump -i %s)\n", d.Address, d.Namespace, d.HostIf, d.HarnessAddress, d.HostIf)
			if d.Address6.IsValid() {
				fmt.Fprintf(w, "           %s; host side %s\n", d.Address6, d.HarnessAddress6)
			}
		} else {
			fmt.Fprintf(w, "  network  %s on the host's loopback; control address %s\n", d.Address, d.ControlAddress)
		}
		fmt.Fprintf(w, "  mgmt     %s:8443, TLS, one JSON request per line (openssl s_client -quiet -connect %s:8443)\n", d.Address, d.Address)
		fmt.Fprintf(w, "  mqtt     mosquitto_sub -h %s -p %s --cafile %s -u %s -P %s -t '%s/%s/#' -v\n",
			host, port, p.Broker.CAFile, p.Broker.Username, p.Broker.Password, p.Broker.TopicPrefix, d.ID)
		fmt.Fprintf(w, "  files    %s (flash), %s (key store)\n", d.DataDir, d.HWDir)
	}
	fmt.Fprintf(w, "\nprofile  %s\nrun dir  %s\n\nCtrl-C stops every device, the broker and the network.\n", b.ProfilePath(), b.Dir())
}

func brokerHostPort(url string) (string, string) {
	u, err := broker.ParseURL(url)
	if err != nil {
		return url, ""
	}
	h, p, _ := net.SplitHostPort(u.Host)
	return h, p
}

// printFlaws lists the reference device's flaws.
func printFlaws(w io.Writer, asJSON bool) error {
	flaws := refdev.Flaws()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(flaws)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAW\tFAILS\tBACKENDS\tWHAT THE DEVICE GETS WRONG")
	for _, f := range flaws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, strings.Join(f.Checks, ","), strings.Join(f.Backends, ","), f.Description)
	}
	return tw.Flush()
}

// outputFiles returns those of the writers that are files (the process's own stdout and
// stderr, not a test's buffer), for outwatch to watch.
func outputFiles(ws ...io.Writer) []*os.File {
	var fs []*os.File
	for _, w := range ws {
		if f, ok := w.(*os.File); ok {
			fs = append(fs, f)
		}
	}
	return fs
}
