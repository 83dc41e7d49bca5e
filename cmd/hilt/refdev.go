package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hilt-project/hilt/fixtures/refdev"
)

// newRefdevCmd returns the hidden "__refdev" command: the reference device firmware, which
// the bench starts as `<hilt executable> __refdev <flags>` (each simulated unit in its own
// network namespace). Its flags are the device's own (docs/REFDEV.md), passed through as
// they are; its exit codes too (0 stopped by a signal, 1 cannot run, 2 bad input).
func newRefdevCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "__refdev [device flags]",
		Short:              "Run the reference device firmware (used by the simulated bench)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if code := refdev.Main(ctx, args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
}
