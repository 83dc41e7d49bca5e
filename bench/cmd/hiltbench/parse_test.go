package main

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hilt-project/hilt/bench/capgen"
)

func TestParseNmap(t *testing.T) {
	const up = `Starting Nmap 7.93 ( https://nmap.org ) at 2026-11-27 10:08 UTC
Nmap scan report for 10.138.227.2
Host is up (0.0000040s latency).
Not shown: 65533 closed tcp ports (reset)
PORT     STATE SERVICE
2323/tcp open  iss-realsecure
8443/tcp open  https-alt
9000/tcp filtered cslistener
MAC Address: B6:B3:D7:4D:01:7A (Unknown)

Nmap done: 1 IP address (1 host up) scanned in 6.00 seconds
`
	const down = `Note: Host seems down. If it is really up, but blocking our ping probes, try -Pn
Nmap done: 1 IP address (0 hosts up) scanned in 3.04 seconds
`
	for _, tt := range []struct {
		name    string
		out     string
		open    []int
		took    time.Duration
		wantErr bool
	}{
		{"two open, one filtered", up, []int{2323, 8443}, 6 * time.Second, false},
		{"host down", down, nil, 3040 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			open, took, err := parseNmap(tt.out, "10.138.227.2")
			if !slices.Equal(open, tt.open) || took != tt.took || (err != nil) != tt.wantErr {
				t.Errorf("got %v, %v, %v; want %v, %v, error %v", open, took, err, tt.open, tt.took, tt.wantErr)
			}
		})
	}
}

func TestParseTshark(t *testing.T) {
	got, err := parseTshark("10.20.1.5\tdev-00002\tpw2\n10.20.0.9\tdev-00001\tp w\t1\n")
	if err == nil {
		t.Fatalf("a line of 4 fields: got %v, want an error", got)
	}
	got, err = parseTshark("10.20.1.5\tdev-00002\tpw2\n10.20.0.9\tdev-00001\tpw1\n")
	want := []capgen.Cred{
		{Src: netip.MustParseAddr("10.20.0.9"), Username: "dev-00001", Password: "pw1"},
		{Src: netip.MustParseAddr("10.20.1.5"), Username: "dev-00002", Password: "pw2"},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
}
