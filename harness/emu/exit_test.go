package emu

import (
	"strings"
	"testing"
	"time"
)

func TestExit(t *testing.T) {
	at := time.Date(2026, 11, 28, 4, 15, 2, 0, time.UTC)
	tests := []struct {
		reason string
		killed bool
		says   string
	}{
		{"", true, "(no shutdown event: killed or crashed)"},
		{"host-signal", true, "(host-signal)"},
		{"guest-shutdown", false, "(guest-shutdown)"},
		{"guest-panic", false, "(guest-panic)"},
	}
	for _, tt := range tests {
		e := Exit{At: at, Reason: tt.reason}
		if got := e.Killed(); got != tt.killed {
			t.Errorf("Exit{Reason: %q}.Killed() = %v, want %v", tt.reason, got, tt.killed)
		}
		if got, want := e.String(), "QEMU exited on its own at 04:15:02 "+tt.says; !strings.Contains(got, want) {
			t.Errorf("Exit{Reason: %q}: %q, want %q", tt.reason, got, want)
		}
	}
}
