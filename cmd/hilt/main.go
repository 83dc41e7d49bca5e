// Command hilt is a hardware-in-the-loop test harness that tells whether an IoT device
// meets the cybersecurity baseline of NIST IR 8259A and ETSI EN 303 645.
//
//	hilt run                       the whole baseline against two simulated devices
//	hilt run --device PROFILE      against the devices a profile describes
//	hilt sim                       start simulated devices to explore by hand
//	hilt qemu                      start emulated (QEMU) devices to explore by hand
//
// Exit codes: 0 every applicable check passed; 1 a device failed a check; 2 an error,
// bad input, or an interrupted run.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hilt-project/hilt/internal/cpuprofile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := &cobra.Command{
		Use:           "hilt",
		Short:         "Hardware-in-the-loop cybersecurity baseline tests for IoT devices",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newRunCmd(), newSimCmd(), newQEMUCmd(), newRefdevCmd(), newCheckCmd())
	stopProfile := cpuprofile.Start(os.Args)
	err := root.Execute()
	stopProfile()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "hilt:", err)
		os.Exit(2)
	}
}
