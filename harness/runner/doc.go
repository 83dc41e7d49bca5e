// Package runner runs the baseline: it starts the units hilt owns (simulated or
// emulated), pins each unit's identity at first contact, runs the suites once per unit
// in a child process of its own (Ginkgo runs one suite per process, and a unit's session
// shares nothing with another's), shows progress, merges the results and writes the
// reports. The child side is Check; the parent side is Run.
package runner
