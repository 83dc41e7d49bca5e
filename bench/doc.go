// Package bench measures hilt at scale: it runs a command and reports its wall time, the
// CPU time of its whole process tree, and the tree's peak memory, and it reads the
// results of `go test -bench`. The command bench/cmd/hiltbench uses it to run every
// benchmark of `make bench` and write BENCHMARKS.md; package bench/capgen writes the
// synthetic capture the analyser is measured on.
//
// Peak memory is the sum over a process and all its descendants (hilt run starts one
// check process and one device process per unit, all of them must count). Where a cgroup
// v2 hierarchy with the memory controller is mounted and this process runs as root, the
// command is started straight into a cgroup of its own (clone3 with CLONE_INTO_CGROUP,
// so no child escapes it) and the cgroup's memory.peak is read when it ends. Everywhere
// the tree is also sampled from /proc every few milliseconds: the largest sum of RSS (and
// of PSS, which splits pages shared between processes, such as the hilt executable's
// text) over the samples. /usr/bin/time -v is no help here: it reports the largest RSS of
// any one process, never their sum.
//
// The Go benchmarks in this folder cover the hot paths that have none in their own
// package (update images, the console transport floor, commands over a console):
//
//	go test ./bench/ -run '^$' -bench . -benchmem
//
// Everything together, on a root shell of a Debian machine (installs nmap and tshark):
//
//	make bench
package bench
