//go:build !linux

package netns

import (
	"context"
	"runtime"
)

func setupNamespaces(context.Context, Options) (*Network, error) {
	return nil, &FallbackError{Reason: "network namespaces need Linux (this is " + runtime.GOOS + ")", Err: ErrUnsupported}
}

type runState struct {
	RunID      string
	Namespaces []string
	HostIfs    []string
}

func removeRun(context.Context, string, runState) error { return nil }

// CleanupStale does nothing where there are no network namespaces.
func CleanupStale(context.Context, string) ([]string, error) { return nil, nil }
