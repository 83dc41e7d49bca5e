package reports

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func shard(devices ...string) *Run {
	r := &Run{HiltVersion: "v0.1.0", GitCommit: "abc", ProfileDigest: "d1", Seed: 7, LabelFilter: "cap:DI"}
	for _, d := range devices {
		r.Devices = append(r.Devices, device(d, check("DI-01", Pass)))
	}
	return r
}

func TestMerge(t *testing.T) {
	a := shard("sim-c", "sim-a")
	a.Start, a.End = fixtureStart.Add(time.Second), fixtureStart.Add(time.Minute)
	a.Broker = "embedded 127.0.0.1:1"
	a.Errors = []string{"shard a error"}
	b := shard("sim-b")
	b.Start, b.End = fixtureStart, fixtureStart.Add(30*time.Second)
	b.Broker = "embedded 127.0.0.1:2"
	b.Interrupted = true
	b.ProfilePath = "/ci/b/sim.yaml"

	got, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range got.Devices {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "sim-a,sim-b,sim-c" {
		t.Errorf("devices %v, want sim-a,sim-b,sim-c", names)
	}
	if !got.Start.Equal(fixtureStart) || !got.End.Equal(fixtureStart.Add(time.Minute)) {
		t.Errorf("start %v end %v", got.Start, got.End)
	}
	if !got.Interrupted || strings.Join(got.Errors, ",") != "shard a error" {
		t.Errorf("interrupted %v errors %v", got.Interrupted, got.Errors)
	}
	if got.Broker != "embedded 127.0.0.1:1; embedded 127.0.0.1:2" || got.ProfilePath != "/ci/b/sim.yaml" {
		t.Errorf("broker %q profile %q", got.Broker, got.ProfilePath)
	}
	if got.HiltVersion != "v0.1.0" || got.Seed != 7 || got.SchemaVersion != SchemaVersion {
		t.Errorf("provenance %+v", got)
	}
	got.Devices[0].Checks[0].Verdict = Fail
	if a.Devices[1].Checks[0].Verdict != Pass {
		t.Error("Merge shares memory with its shards")
	}
}

func TestMergeRejects(t *testing.T) {
	tests := []struct {
		name     string
		runs     []*Run
		conflict bool
		msg      string
	}{
		{"no runs", nil, false, "no runs"},
		{"nil shard", []*Run{shard("a"), nil}, false, "shard 1 is nil"},
		{"same device twice", []*Run{shard("a", "b"), shard("b")}, true, `device "b" is in shards 0 and 1`},
		{"other hilt", []*Run{shard("a"), func() *Run { r := shard("b"); r.HiltVersion = "v0.2.0"; return r }()}, true, "hilt version"},
		{"other profile", []*Run{shard("a"), func() *Run { r := shard("b"); r.ProfileDigest = "d2"; return r }()}, true, "profile digest"},
		{"other seed", []*Run{shard("a"), func() *Run { r := shard("b"); r.Seed = 8; return r }()}, true, "seed"},
		{"other filter", []*Run{shard("a"), func() *Run { r := shard("b"); r.LabelFilter = ""; return r }()}, true, "label filter"},
		{"other flaws", []*Run{shard("a"), func() *Run { r := shard("b"); r.Flaws = []string{"x"}; return r }()}, true, "flaws"},
		{"newer schema", []*Run{shard("a"), func() *Run { r := shard("b"); r.SchemaVersion = 9; return r }()}, false, "schema version 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Merge(tc.runs...)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			if errors.Is(err, ErrMergeConflict) != tc.conflict {
				t.Errorf("errors.Is(%v, ErrMergeConflict) = %v, want %v", err, !tc.conflict, tc.conflict)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q lacks %q", err, tc.msg)
			}
		})
	}
}

func TestMergeOne(t *testing.T) {
	a := shard("a")
	got, err := Merge(a)
	if err != nil {
		t.Fatal(err)
	}
	if got == a || len(got.Devices) != 1 {
		t.Errorf("got %+v", got)
	}
}
