// Package suites holds the Ginkgo v2 specs of the hilt baseline: one spec per check of
// docs/CATALOG (../shared/design/BASELINE.md), labelled from harness/catalog, grouped in
// one file per capability (identity.go, configuration.go, dataprotection.go,
// interfaces.go, update.go, stateawareness.go, retirement.go, information.go).
//
// Specs drive one device through its session (harness/session) and never import the
// reference device's code, nor learn which flaw a simulated device carries. Each spec
// takes a SpecContext, runs under the profile's check timeout, restores what it changed
// with DeferCleanup, and leaves evidence under evidence/<device>/<check>/.
//
// Run builds the tree for one device and calls RunSpecs once: hilt runs one process per
// device (see harness/runner), because Ginkgo runs one suite per process.
package suites
