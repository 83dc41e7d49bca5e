package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hilt-project/hilt/bench"
)

// TestOneUnitProfile: the copy keeps the first unit only, sits next to the original (its
// relative paths still name the same files) and is gone after remove.
func TestOneUnitProfile(t *testing.T) {
	tests := []struct {
		name, text string
		wantErr    bool
	}{
		{"two units", "backend: qemu\ndeclarations: ../declarations/refdev.yaml\ninstances:\n  - name: dev1\n  - name: dev2\n", false},
		{"one unit", "backend: qemu\ninstances:\n  - name: dev1\n", false},
		{"no units", "backend: qemu\ninstances: []\n", true},
		{"no mapping", "- a\n- b\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			orig := filepath.Join(dir, "qemu.yaml")
			if err := os.WriteFile(orig, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			one, remove, err := oneUnitProfile(orig)
			if tt.wantErr {
				if err == nil {
					remove()
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(one) != dir {
				t.Errorf("copy in %s, want next to the original in %s", filepath.Dir(one), dir)
			}
			b, err := os.ReadFile(one)
			if err != nil {
				t.Fatal(err)
			}
			var p struct {
				Declarations string              `yaml:"declarations"`
				Instances    []map[string]string `yaml:"instances"`
			}
			if err := yaml.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Instances) != 1 || p.Instances[0]["name"] != "dev1" {
				t.Errorf("instances %v, want dev1 only", p.Instances)
			}
			remove()
			if _, err := os.Stat(one); !os.IsNotExist(err) {
				t.Errorf("the copy is still there after remove: %v", err)
			}
		})
	}
}

// TestEmulatedSectionAlone renders the emulated section without the simulated runs and
// with a first boot hilt's output did not give: it says so rather than print zeros.
func TestEmulatedSectionAlone(t *testing.T) {
	cfg, err := parseFlags([]string{"-only", "emulated"})
	if err != nil {
		t.Fatal(err)
	}
	h := hiltRun{Devices: 1, Order: []string{"SU-09"}, Checks: map[string]map[string]int64{"SU-09": {"dev1": 50000}},
		Verdicts: map[string]int{"pass": 1}}
	r := &report{Cfg: cfg, Machine: bench.Machine{Cores: 2}, Emu: &emuResult{Profile: "q.yaml", Runs: []emuRun{{hiltRun: h, Boots: 7}}}}
	md := string(r.markdown())
	for _, want := range []string{"first boot, from QEMU's start to the firmware's ready line, **not measured**",
		"the simulated device was not measured", "| SU-09 | 50.00 s | – | – |", "accelerator not named"} {
		if !strings.Contains(md, want) {
			t.Errorf("the section lacks %q:\n%s", want, md)
		}
	}
}
