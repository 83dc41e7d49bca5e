package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `model: refdev-thermostat
backend: external
declarations: decl.yaml
broker:
  url: mqtts://192.0.2.10:8883
instances:
  - name: unit1
    serial: {port: /dev/ttyUSB0}
    address: 192.0.2.21
    admin: {user: owner, pass: secret-password}
`

func TestParse(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // substring of the error; "" = valid
	}{
		{"valid", good, ""},
		{"unknown backend", strings.Replace(good, "backend: external", "backend: bench", 1), "p.yaml:2: backend: \"bench\" is not a backend"},
		{"missing backend", strings.Replace(good, "backend: external\n", "", 1), "backend: missing"},
		{"bad address", strings.Replace(good, "192.0.2.21", "192.0.2", 1), "p.yaml:9: instances[0].address: \"192.0.2\" is not an IP address"},
		{"bad broker url", strings.Replace(good, "mqtts://", "http://", 1), "broker.url"},
		{"unknown field", strings.Replace(good, "model:", "modle: x\nmodel:", 1), "field modle not found"},
		{"bad duration", good + "timeouts: {boot: soon}\n", "not a duration"},
		{"no instances", strings.Split(good, "instances:")[0], "instances: no instances"},
		{"duplicate name", good + "  - name: unit1\n    serial: {port: /dev/ttyUSB1}\n    address: 192.0.2.22\n", "used twice"},
		{"external needs serial", strings.Replace(good, "    serial: {port: /dev/ttyUSB0}\n", "", 1), "serial.port: missing"},
		{"syntax", "model: [\n", "p.yaml:"},
		{"valid address6", strings.Replace(good, "    admin:", "    address6: fd12:3456:789a:1::2\n    admin:", 1), ""},
		{"bad address6", strings.Replace(good, "    admin:", "    address6: fd12::zz\n    admin:", 1), "p.yaml:10: instances[0].address6: \"fd12::zz\" is not an IP address"},
		{"IPv4 in address6", strings.Replace(good, "    admin:", "    address6: 192.0.2.22\n    admin:", 1), "p.yaml:10: instances[0].address6: \"192.0.2.22\" is not an IPv6 address"},
		{"mapped IPv4 in address6", strings.Replace(good, "    admin:", "    address6: \"::ffff:192.0.2.22\"\n    admin:", 1), "instances[0].address6: \"::ffff:192.0.2.22\" is not an IPv6 address"},
		{"address6 repeats address", strings.Replace(strings.Replace(good, "192.0.2.21", "2001:db8::21", 1), "    admin:", "    address6: 2001:db8:0::21\n    admin:", 1), "p.yaml:10: instances[0].address6: \"2001:db8:0::21\" is the address already given in address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got profile %+v, want an error containing %q", p, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	p, err := Parse("p.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Allowed("wipe") || p.Allowed("power_cut") || p.Allowed("version_bump") {
		t.Error("destructive checks must default to off for external units")
	}
	if got := p.Instances[0].Serial.Baud; got != 115200 {
		t.Errorf("baud: got %d, want 115200", got)
	}
	sim, err := Parse("p.yaml", []byte(strings.Replace(good, "backend: external", "backend: sim", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !sim.Allowed("wipe") {
		t.Error("destructive checks must default to on for simulated units")
	}
}

func TestAddresses(t *testing.T) {
	cases := []struct {
		name string
		in   Instance
		want string
	}{
		{"IPv4 only", Instance{Address: "192.0.2.21"}, "192.0.2.21"},
		{"both", Instance{Address: "192.0.2.21", Address6: "fd00::2"}, "192.0.2.21 fd00::2"},
		{"none", Instance{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.in.Addresses(), " "); got != tc.want {
				t.Errorf("Addresses() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoadShippedDeclarations(t *testing.T) {
	d, err := LoadDeclarations(filepath.Join("..", "..", "fixtures", "declarations", "refdev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Interface("mgmt"); !ok {
		t.Error("the reference declarations declare no mgmt interface")
	}
	if _, err := os.Stat(d.ResolveDecl(d.SBOM)); err != nil {
		t.Errorf("declared SBOM: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("backend: sim\ninstances: [{name: a}]\n"))
	f.Add([]byte("instances:\n  - name: [x]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse("fuzz.yaml", b)
		if err == nil && p == nil {
			t.Fatal("nil profile without an error")
		}
	})
}
