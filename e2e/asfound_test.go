package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/wire"
)

// deviceState is what a run must leave as it found it: settings, interfaces, the owner's
// credentials (the state is read with them), the security state, and no trace of the user
// data DP-03 plants.
type deviceState struct {
	Settings   map[string]any  `json:"settings"`
	Interfaces map[string]bool `json:"interfaces"`
	State      string          `json:"state"`
	Reasons    []string        `json:"reasons"`
	PlantedPSK string          `json:"planted_psk"` // "" when userdata wifi_psk is absent
}

// TestRunLeavesDeviceAsFound runs the whole baseline against a unit hilt does not own (a
// `hilt sim` bench described as external: hilt run can only talk to it) and compares the
// unit's state over mgmt before and after: settings, enabled interfaces, the security
// state, the user data DP-03 plants, and the owner's password (read with it, so it must still work). The
// checks change all of these on the way (LA-02 disables interfaces, LA-05 the lockout, DC
// the settings, RT decommissions and provisions anew).
func TestRunLeavesDeviceAsFound(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("runs the whole baseline; not in -short")
	}
	bench := startSimBench(t)
	ext := bench.profile
	// External units get no destructive checks unless the profile allows them: allow
	// decommission (RT) and version bumps (SU), which change the unit most.
	b, err := os.ReadFile(ext)
	if err != nil {
		t.Fatal(err)
	}
	allow := []byte("\ndestructive:\n    wipe: true\n    version_bump: true\n")
	if !bytes.Contains(b, []byte("\ndestructive: {}\n")) {
		t.Fatalf("%s has no empty destructive section for the test to fill:\n%s", ext, b)
	}
	path := filepath.Join(t.TempDir(), "external-destructive.yaml")
	if err := os.WriteFile(path, bytes.Replace(b, []byte("\ndestructive: {}\n"), allow, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	in := p.Instances[0]
	before := readState(t, bench, in)
	t.Logf("before: %+v", before)
	r := hilt(t, "run", "--device", path)
	if r.code != 0 {
		bench.requireAlive(t)
		t.Fatalf("compliant run against the external unit: exit %d, want 0\n%s", r.code, r.describe())
	}
	// The checks that change the unit must have run, or the comparison proves nothing.
	vs := r.verdicts()
	for _, id := range []string{"DC-01", "DC-03", "LA-02", "LA-05", "RT-01", "RT-02", "SU-01", "SU-08"} {
		if !reflect.DeepEqual(vs[id], []string{"pass"}) {
			t.Errorf("%s: verdicts %v, want pass (it changes the unit; the test needs it to run)", id, vs[id])
		}
	}
	after := readState(t, bench, in)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the run did not leave the unit as it found it:\n before %+v\n after  %+v", before, after)
	}
}

// readState reads the unit's state over mgmt as its admin. A failure to talk to the unit
// first checks that its bench still runs (and says why not).
func readState(t *testing.T, bench *simBench, in profile.Instance) deviceState {
	t.Helper()
	bench.requireAlive(t)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", net.JoinHostPort(in.Address, "8443"),
		// The unit's certificate is self-signed by its identity key (DI-05 checks it); this
		// test reads state only.
		&tls.Config{InsecureSkipVerify: true})
	if err != nil {
		bench.requireAlive(t)
		t.Fatalf("mgmt of %s: %v", in.Name, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	auth := &wire.Auth{User: in.Admin.User, Pass: in.Admin.Pass}
	n := 0
	call := func(cmd string, args map[string]any, out any) *wire.Error {
		t.Helper()
		n++
		req, _ := json.Marshal(wire.Request{Corr: strconv.Itoa(n), Auth: auth, Cmd: cmd, Args: args})
		if _, err := conn.Write(append(req, '\n')); err != nil {
			bench.requireAlive(t)
			t.Fatalf("mgmt %s: %v", cmd, err)
		}
		line, err := rd.ReadBytes('\n')
		if err != nil {
			bench.requireAlive(t)
			t.Fatalf("mgmt %s: %v", cmd, err)
		}
		var resp wire.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			bench.requireAlive(t)
			t.Fatalf("mgmt %s: %q: %v", cmd, line, err)
		}
		if !resp.OK {
			return resp.Error
		}
		if out != nil {
			if err := json.Unmarshal(resp.Result, out); err != nil {
				t.Fatalf("mgmt %s: %s: %v", cmd, resp.Result, err)
			}
		}
		return nil
	}
	var s deviceState
	must := func(e *wire.Error, what string) {
		t.Helper()
		if e != nil {
			t.Fatalf("%s as admin %s: %s %s (the owner's credentials must work)", what, in.Admin.User, e.Code, e.Message)
		}
	}
	must(call("config.get", nil, &s), "config.get")
	must(call("iface.list", nil, &s), "iface.list")
	must(call("state", nil, &s), "state")
	var ud struct {
		Value string `json:"value"`
	}
	if e := call("userdata.get", map[string]any{"key": "wifi_psk"}, &ud); e == nil {
		s.PlantedPSK = ud.Value
	} else if e.Code != wire.CodeInvalid { // invalid: no such user data

		t.Fatalf("userdata.get wifi_psk: %s %s", e.Code, e.Message)
	}
	return s
}
