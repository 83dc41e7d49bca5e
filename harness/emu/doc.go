// Package emu is the emulated bench: it boots reference devices (or any firmware built into
// the initramfs) as QEMU virtual machines through drivers/qemu, acts as their factory and
// first owner, and hands the harness a device profile, as harness/sim does for simulated
// devices. It runs what needs a real disk: SU-09 (power cut while an update is written) and
// DP-03/RT-03 on the raw disk image.
//
// Per unit, Start makes:
//   - a tap device hq<run><i> with the host's end of a /30 in 10.0.0.0/8 (the unit's capture
//     interface, IPv6 off); the unit gets the other address, on the kernel command line;
//   - a data disk (data.img, ext4 labelled hilt-data, the unit's flash) and a key store disk
//     (keystore.img, ext4 labelled hilt-ks, standing for a secure element) holding the factory
//     record factory.json with a seed made of the bench's production batch (the same for
//     every unit) and a random per-unit half, so that units of one image differ;
//   - a console relay: a pty of the bench's own (the profile's serial port, also linked as
//     <dir>/<unit>/console) that stays in place while the unit's QEMU is power-cycled, like a
//     serial cable left plugged in. What the guest prints reaches whoever has it open;
//     nobody there, it is dropped, as on a UART with nothing attached;
//   - the VM itself, with the control port of fixtures/qemu/init on its second UART: the
//     bench's power and maintenance controller (sync, read the key store, halt cleanly).
//
// Start then waits for "refdev ready" on each console (the time to it is the unit's
// boot-to-ready), provisions the owner over the console (provision admin <random>) and
// reads the unit's ID and identity key, copies the key store into <dir>/<unit>/keystore/
// (with label.txt, the physical label), and returns the Bench with its Profile.
//
// PowerCut and Restart cut a unit's power (QMP quit: RAM and unsynced writes lost) and boot
// it again; ShutdownForScan syncs, stops the firmware, unmounts both disks and powers off, so
// that data.img can be scanned as raw storage, then Restart. The console relay carries the
// new boot's output, "refdev ready" included, to the harness. Close kills every VM and
// removes the taps and (unless kept) the run folder; it is idempotent and safe after a
// failed Start, which calls it itself. Temporary folders are named after the PID of the
// process that owns them (internal/rundir): Start removes the taps and folders of benches
// whose process died without Close (SIGKILL, a crash); their QEMUs died with them
// (parent-death signal).
//
// The bench needs root (tap devices), qemu-system-x86_64, iproute2, e2fsprogs, and the kernel
// cache and initramfs of `make qemu-image`. Its tests boot real VMs; they skip when something
// is missing and fail instead when CI=true. docs/QEMU.md has the details.
package emu
