package sim

import "github.com/hilt-project/hilt/harness/netns"

// listenArgs6 are the device's command line arguments for its IPv6 address: a second
// --listen, so that its services listen on both families (docs/SIM.md), or none where the
// device has no IPv6 address (loopback mode: the devices would all share ::1).
func listenArgs6(h netns.Host) []string {
	if !h.Address6.IsValid() {
		return nil
	}
	return []string{"--listen", h.Address6.String()}
}
