// Package capgen writes a synthetic packet capture for benchmarks: a pcapng file
// (gopacket's pcapgo.NgWriter, Ethernet frames built with gopacket's layers) of TLS,
// cleartext MQTT, cleartext HTTP and DNS flows, interleaved as on a busy link, from a
// seeded generator: the same Options give the same file, byte for byte.
//
// Cleartext MQTT goes to port 1883 (the port tshark dissects as MQTT by default), TLS to
// 443 and 8883, HTTP to 80, DNS to 53/udp. Every TCP flow has its handshake and its
// close, every data segment its acknowledgement (some delayed). Most MQTT clients log in
// with a user name and a password; one of them, past the first two fifths of the file,
// has its CONNECT cut in two TCP segments in the middle of the password, so that finding
// that password takes reassembly. Summary lists every password sent, as
// `tshark -Y mqtt.passwd -T fields -e ip.src -e mqtt.username -e mqtt.passwd` shows them.
//
//	go test ./bench/capgen/
package capgen
