// Package runner runs the baseline: it starts the units hilt owns (simulated or
// emulated), pins each unit's identity at first contact, runs the suites once per unit
// in a child process of its own (Ginkgo runs one suite per process, and a unit's session
// shares nothing with another's), shows progress, merges the results and writes the
// reports. The child side is Check; the parent side is Run.
//
// A run first removes what runs killed before they could clean up left on the machine
// (namespaces, veths, taps, temporary folders of owners that are gone; never a live run's).
// A run interrupted through its context (Ctrl-C, SIGTERM, SIGHUP in hilt run) interrupts
// each child once; Ginkgo stops the running check and runs its cleanup, which leaves the
// unit as found, and the run still writes its reports. A child whose parent dies without
// stopping it gets ParentDeathSignal and interrupts itself (InterruptOnParentDeath).
package runner
