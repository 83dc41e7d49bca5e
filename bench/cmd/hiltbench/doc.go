// Command hiltbench runs hilt's benchmarks at scale and writes BENCHMARKS.md: the
// baseline on one simulated device (wall time, time per check), fleets of simulated
// devices (wall time, peak memory of the whole process tree), a full TCP port scan
// against nmap, capture analysis against tshark, the console against the bare pty it
// reads, the Go benchmarks of the hot paths, and the whole baseline on one emulated unit
// (QEMU: boot to ready, wall time, time per check). Each figure is the median of several
// runs, shown with the load average at the time and as a ratio against its peer (or its
// target, where it has no peer) measured in the same run on the same input.
//
// `make bench` runs it through scripts/bench.sh, which installs nmap, tshark and QEMU and
// builds the emulated device's image first. It needs root for the faithful figures
// (network namespaces for the simulated devices, nmap's SYN scan, the emulated unit's
// tap); without root the devices fall back to loopback and it says so, and the emulated
// section says it was not measured.
//
//	go run ./bench/cmd/hiltbench -hilt bin/hilt -o BENCHMARKS.md
//	go run ./bench/cmd/hiltbench -only scan,capture        # some sections only
//
// It also runs itself as the measured child of two benchmarks (`hiltbench __scan ADDR`,
// `hiltbench __analyze FILE`), so that hilt's code is measured as a process, like its
// peers, and generates captures (`hiltbench gen -o FILE`).
package main
