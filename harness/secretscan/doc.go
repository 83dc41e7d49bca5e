// Package secretscan finds planted secrets in bytes, streams, files, directories and
// disk images, raw and in the encodings a device might store or send them in: hex (lower
// and upper case), base64 (standard and URL alphabets, padded or not, and embedded at any
// offset of a larger base64 text), and UTF-16 (little and big endian).
//
// The checks DP-01 (secrets on the wire), DP-03 (secrets at rest) and RT-03 (secrets
// left after decommission) stand on it: a hit is a finding, so the scanner errs on the
// side of reporting.
//
// All the encodings of all the secrets are compiled into one Aho-Corasick automaton
// (a Set). Scanning is a single pass over the input at a constant cost per byte, and a
// Stream carries the automaton's state from one chunk to the next, so a secret split
// across two reads, two TCP segments or two disk blocks is found without keeping any
// overlap, and a 1 GiB disk image is read in fixed-size chunks, never into memory.
//
// Base64 needs care: a secret encoded at byte offset o of a larger text lands on one of
// three alignments (o mod 3), and the characters at both ends of its encoding depend on
// its neighbours. For each alignment the scanner therefore also searches the "stable
// middle" of the encoding, the characters that depend on the secret's bytes alone; hits
// on those are reported as base64-shift1 and base64-shift2 (and base64url-...). Such
// cores are skipped when they would be shorter than MinPatternLen bytes.
//
// Run the tests, the fuzz target and the benchmarks with
//
//	go test ./harness/secretscan/
//	go test ./harness/secretscan/ -run '^$' -fuzz FuzzScan -fuzztime 30s
//	go test ./harness/secretscan/ -run '^$' -bench .
package secretscan
