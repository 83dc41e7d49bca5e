//go:build race

package netprobe_test

// raceEnabled: the race detector slows the analysis tenfold; big tests shrink.
const raceEnabled = true
