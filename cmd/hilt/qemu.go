package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/hilt-project/hilt/harness/runner"
	"github.com/hilt-project/hilt/internal/outwatch"
)

// defaultQEMUProfile is the emulated reference device's profile in a checkout.
const defaultQEMUProfile = "fixtures/devices/qemu.yaml"

func newQEMUCmd() *cobra.Command {
	var (
		device    string
		flaws     []string
		out       string
		mosquitto bool
	)
	cmd := &cobra.Command{
		Use:   "qemu",
		Short: "Start emulated reference devices under QEMU to explore by hand",
		Long: `Boot the emulated units a qemu profile describes (default ` + defaultQEMUProfile + `),
each a QEMU virtual machine with its own disks, tap link and console, with an MQTT broker
(embedded, or a private Mosquitto with --mosquitto), as hilt run does before its checks;
print how to reach each unit and the profile for them, then wait until Ctrl-C, SIGTERM, a
closed terminal (SIGHUP; not under nohup) or a closed output pipe, and stop everything.
The QEMU command lines, QEMU's output and events are in OUT/.hilt/qemu-bench.log, each
unit's console in OUT/.hilt/<unit>.console.log when it stops.

Needs root (tap devices), qemu-system-x86_64, mkfs.ext4, and the kernel and initramfs of
make qemu-image (docs/QEMU.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := runner.Options{Flaws: flaws, Out: out, Stdout: cmd.OutOrStdout()}
			o.Bench.Mosquitto = mosquitto
			return runQEMU(cmd.Context(), o, device, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&device, "device", defaultQEMUProfile, "qemu device profile (YAML, backend: qemu)")
	fl.StringArrayVar(&flaws, "flaw", nil, "start the units with this flaw (repeatable; see hilt sim --list-flaws)")
	fl.StringVar(&out, "out", "out-qemu", "folder for the bench log and the units' console logs")
	fl.BoolVar(&mosquitto, "mosquitto", false, "start a private Mosquitto instead of the embedded broker")
	return cmd
}

// runQEMU starts the emulated bench, prints how to reach it, and waits for a signal.
func runQEMU(parent context.Context, o runner.Options, device string, stdout, stderr io.Writer) error {
	if parent == nil {
		parent = context.Background()
	}
	// As hilt sim: a closed terminal or output pipe stops the bench, a SIGPIPE does not.
	ctx, stop := signal.NotifyContext(parent, stopSignals()...)
	defer stop()
	ctx, stopWatch := outwatch.Context(ctx, outputFiles(stdout, stderr)...)
	defer stopWatch()
	p, stopBench, err := runner.StartEmulated(ctx, o, device)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "hilt qemu: interrupted while starting; everything started is stopped")
			return exitError{2}
		}
		if errors.Is(err, runner.ErrBadInput) {
			fmt.Fprintln(stderr, "hilt qemu:", err)
			return exitError{2}
		}
		return fmt.Errorf("emulated bench: %w", err)
	}
	fmt.Fprintf(stdout, "\nbroker   %s %s (CA %s), harness account %s\n", p.Broker.Kind, p.Broker.URL, p.Broker.CAFile, p.Broker.Username)
	for _, in := range p.Instances {
		fmt.Fprintf(stdout, "\n%s  ready %v after power-on\n", in.Name, in.BootToReady.Duration)
		fmt.Fprintf(stdout, "  console  picocom --echo -b 115200 %s   (then: login %s %s)\n", in.Serial.Port, in.Admin.User, in.Admin.Pass)
		fmt.Fprintf(stdout, "  network  %s (mgmt TLS on 8443)\n", in.Address)
		fmt.Fprintf(stdout, "  disks    %s (flash), key store copy in %s\n", in.Storage.DiskImage, in.Storage.KeystoreDir)
	}
	fmt.Fprintf(stdout, "\nprofile  %s (valid while the units run)\nCtrl-C stops every unit, the broker and the taps.\n", p.Path)
	<-ctx.Done()
	if errors.Is(context.Cause(ctx), outwatch.ErrOutputClosed) {
		fmt.Fprintf(stderr, "hilt qemu: %v\n", outwatch.ErrOutputClosed)
	}
	fmt.Fprintln(stderr, "hilt qemu: stopping")
	stopBench()
	return nil
}
