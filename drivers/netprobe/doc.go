// Package netprobe looks at a device from the network: which ports it opens, how its
// TLS services negotiate, and what it sends, captured and decoded.
//
// Probing:
//   - ScanTCP probes every TCP port (or those given WithPorts) and returns the open
//     ones. As root (CAP_NET_RAW) on Linux it runs a SYN scan: one raw socket (IPv4 or
//     IPv6; for IPv6 the kernel computes the checksum), connected to the target, sends a
//     SYN per port and, through a socket filter, reads the answers to its one source
//     port: SYN-ACK is open, RST closed, silence filtered; the host's own stack resets the
//     SYN-ACKs. SYNs go out and answers come in up to 128 per system call (sendmmsg,
//     recvmmsg). At most a window of SYNs is in flight at a time, WithConcurrency at
//     first: it halves when SYNs are lost (ports answer a later SYN but not their first,
//     as on a path that drops what it cannot queue, such as an emulated device's tap) and
//     grows back while none are; ports that never answer leave it as it is. Sends
//     are clocked by the answers, so that a burst lost in a full queue does not go out
//     again as a burst. A SYN unanswered for WithDialTimeout is sent again, no sooner:
//     once, or three times once the path has lost one. Otherwise (no raw socket, or no answer at all) it
//     connects to every port: refused is closed,
//     silence is filtered, and any other failure fails the scan with ErrUnreachable, so
//     that "could not reach" never reads as "nothing open". On Linux the connects are
//     non-blocking and multiplexed on epoll. WithMethod forces one method; a full
//     65535-port scan of a simulated device takes about 0.2 s as a SYN scan and about a
//     second as a connect scan, with several times the CPU (BENCHMARKS.md).
//   - ScanAttributed scans the device and a control address on the same host stack
//     (another 127.x address, the harness's end of the device's link) and sets apart the
//     ports that answer on both: those belong to the host, not the device. Its result
//     says which method ran (Method) and why not a SYN scan (Fallback).
//   - ProbeUDP tells open (an answer), closed (ICMP port unreachable) and
//     open-or-filtered (silence) apart for one UDP port.
//   - InspectTLS reports the negotiated version, cipher suite and certificates, or why
//     the handshake failed; TCPReachable answers yes or no for one port.
//
// Capture (Linux): StartCapture records an interface into a pcapng file written with
// gopacket's pcapgo.NgWriter and flushed after every packet, optionally keeping only a
// host's packets. It reads an AF_PACKET socket of its own, in Go's netpoller, so that
// Stop works on a quiet interface (see Capture). Without root or CAP_NET_RAW it fails
// with ErrCaptureNotPermitted: a check must then report an error, never a pass.
//
// Analysis: Analyze and AnalyzeFile read pcap or pcapng (with bounded allocations: a
// malformed file is an error, never a giant allocation), decode Ethernet, Linux cooked,
// BSD loopback and raw IP frames with gopacket's DecodingLayerParser, group TCP and UDP
// packets into flows, reassemble each TCP direction in sequence order, classify every
// flow (tls, dtls, mqtt-cleartext, cleartext-other, empty), search every direction for
// planted secrets in every encoding of package secretscan (a secret split across
// segments, or sent out of order, is found), and extract the user name and password of
// cleartext MQTT CONNECTs (what `tshark -Y mqtt.passwd` shows). Memory stays bounded on
// captures of any length.
//
// Tests run on the loopback interface and need no network; the capture tests need root
// (they skip, saying so, otherwise):
//
//	go test ./drivers/netprobe/
//	go test ./drivers/netprobe/ -run '^$' -fuzz FuzzAnalyze -fuzztime 60s
//	go test ./drivers/netprobe/ -run '^$' -bench .
package netprobe
