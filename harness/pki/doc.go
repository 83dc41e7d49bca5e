// Package pki makes the run-scoped certificates of a simulated bench: a CA (ECDSA P-256,
// valid for one day) that the devices are given as their broker trust anchor, server
// certificates signed by it for the broker, and certificates from a separate throwaway CA
// that a device must refuse (DP-02: a server it does not trust).
//
// Nothing here is meant to outlive a run: keys are generated in memory and written, mode
// 0600, only into the run directory the caller names. The package needs no privileges and
// no network; `go test ./harness/pki/...` runs anywhere.
package pki
