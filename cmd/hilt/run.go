package main

import (
	"context"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/hilt-project/hilt/harness/runner"
	"github.com/hilt-project/hilt/harness/sim"
	"github.com/hilt-project/hilt/internal/outwatch"
)

func newRunCmd() *cobra.Command {
	var o runner.Options
	var bench simFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the baseline against a device profile, or against simulated devices",
		Long: `Run every baseline check (or those --label-filter selects) and write junit.xml,
compliance.json, compliance.md and evidence/ into --out.

Without --device, hilt starts two simulated reference devices with an embedded MQTT broker.
Exit codes: 0 every applicable check passed; 1 a device failed a check and nothing
errored; 2 any error, bad input, no check selected, or an interrupted run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Ctrl-C, SIGTERM and a closed terminal (SIGHUP) interrupt the run: it stops
			// the checks (their cleanups restore the units), writes the reports and exits 2.
			ctx, stop := signal.NotifyContext(cmd.Context(), stopSignals()...)
			defer stop()
			// A closed output pipe (hilt run | head, or a tee that Ctrl-C ended first) must
			// not kill the run half way through its cleanup: with SIGPIPE caught, writes to
			// it fail and the run goes on to write its reports.
			outwatch.CatchSIGPIPE()
			o.Stdout, o.Version = cmd.OutOrStdout(), version
			bench.devices, bench.flaws = o.Devices, o.Flaws
			// Bad flags still end in a report that says what was wrong.
			o.Bench, o.Invalid = bench.options(cmd.ErrOrStderr())
			_, code := runner.Run(ctx, o)
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Device, "device", "", "device profile (YAML); default: simulated devices")
	f.IntVar(&o.Devices, "devices", 2, "number of simulated devices when no --device is given")
	bench.addBrokerFlags(f)
	f.IntVar(&bench.bootTimeoutSec, "boot-timeout", int(sim.DefaultBootTimeout.Seconds()), "seconds each simulated device may take to boot (the profile's boot timeout: how long the harness waits for a unit to come back)")
	f.StringArrayVar(&o.Flaws, "flaw", nil, "start hilt-started devices with this flaw (repeatable; see hilt sim --list-flaws)")
	f.StringVar(&o.Out, "out", "out", "folder for reports and evidence")
	f.StringVar(&o.LabelFilter, "label-filter", "", "run only checks whose labels match (e.g. 'cap:SU && !SU-09'; see docs/LABELS.md)")
	f.Int64Var(&o.Seed, "seed", 0, "random seed recorded in the report (default: random)")
	return cmd
}

func newCheckCmd() *cobra.Command {
	var o runner.CheckOptions
	cmd := &cobra.Command{
		Use:    "__check",
		Hidden: true,
		Short:  "run the suites against one unit (started by hilt run)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := runner.ProgressPipe(); f != nil {
				o.Progress = f
			}
			o.Log = cmd.ErrOrStderr()
			// hilt run interrupts a child with SIGINT; Ginkgo's own handler then stops
			// the running check and runs its cleanup. If hilt run dies first (SIGKILL),
			// its parent-death signal does the same, once.
			defer runner.InterruptOnParentDeath(o.Log)()
			if err := runner.Check(context.Background(), o); err != nil {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", "", "")
	f.StringVar(&o.Instance, "instance", "", "")
	f.StringVar(&o.Out, "out", "", "")
	f.StringVar(&o.Pins, "pins", "", "")
	f.StringVar(&o.LabelFilter, "label-filter", "", "")
	f.Int64Var(&o.Seed, "seed", 0, "")
	f.StringVar(&o.Result, "result", "", "")
	return cmd
}
