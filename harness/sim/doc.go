// Package sim is the simulated bench: it starts reference devices as separate processes,
// each with a network surface of its own (harness/netns), a pty as its serial console, a
// data folder standing in for flash and a key store standing in for a secure element,
// gives them a broker (harness/broker, with run-scoped certificates from harness/pki), acts
// as their factory (factory.json before first boot) and their first owner (provisioning
// over the console), and writes a device profile (profile.yaml) that the harness runs
// against. docs/SIM.md describes the bench, its contract with the device and its files.
//
// Start brings the bench up and returns only when every device has booted, been
// provisioned and connected to the broker; on any failure it leaves no process, namespace,
// interface or temporary folder behind. Close stops everything; it is idempotent.
//
// Devices are started as `<Exe> __refdev --hw HW --data DATA --console-fd 3 --notify-fd 4
// --listen ADDR [--flaw NAME]...` inside their namespace. fd 3 is the pty's master (the
// bench keeps the slave open for its lifetime, so the device never reads EIO, and relays it
// to a second pty, the "USB adapter", that the harness opens through the link devN/console:
// cable.go), fd 4 a pipe on which the device writes `ready {"id":"...","boot":N}` after every
// boot.
//
// The fault control (faultctl.go; docs/SIM.md, "Faults") is a unix socket, faults.sock in
// the run folder, through which a test unplugs and replugs a device's console adapter and
// stops, starts or restarts the broker; Bench.Unplug, Replug and BrokerFault do the same
// in Go.
//
// Running the tests: as root they make namespaces (`sudo go test ./harness/sim/...`), as
// anyone else they exercise the loopback fallback only. They build a small fake device
// (internal/fakedev), not the reference device. The Mosquitto variant needs the mosquitto
// package and is skipped without it, except with CI=true, where it fails.
package sim
