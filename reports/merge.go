package reports

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrMergeConflict is wrapped by Merge's errors when shards cannot belong to one run.
var ErrMergeConflict = errors.New("shards do not belong to one run")

// Merge combines the shards of one run, each on different devices, into one run. The shards
// must agree on what was run: hilt version and commit, profile digest, seed, label filter and
// flaws; a device name may appear in one shard only. The merged run starts
// with the earliest shard and ends with the latest, is interrupted if any shard was, and
// holds every shard's errors and devices (sorted by name). Brokers that differ are listed
// together. The shards are not changed.
func Merge(runs ...*Run) (*Run, error) {
	if len(runs) == 0 {
		return nil, errors.New("reports: merge: no runs")
	}
	for i, r := range runs {
		if r == nil {
			return nil, fmt.Errorf("reports: merge: shard %d is nil", i)
		}
		if err := checkSchema(r); err != nil {
			return nil, fmt.Errorf("reports: merge: shard %d: %w", i, err)
		}
	}
	out := runs[0].clone()
	out.SchemaVersion = SchemaVersion
	out.Errors, out.Devices = nil, nil
	var brokers []string
	owner := map[string]int{} // device name -> shard
	for i, r := range runs {
		for _, f := range []struct {
			name     string
			got, all string
		}{
			{"hilt version", r.HiltVersion, out.HiltVersion},
			{"git commit", r.GitCommit, out.GitCommit},
			{"profile digest", r.ProfileDigest, out.ProfileDigest},
			{"label filter", r.LabelFilter, out.LabelFilter},
			{"seed", fmt.Sprint(r.Seed), fmt.Sprint(out.Seed)},
			{"flaws", strings.Join(r.Flaws, ","), strings.Join(out.Flaws, ",")},
		} {
			if f.got != f.all {
				return nil, fmt.Errorf("reports: merge: shard %d has %s %q, shard 0 %q: %w", i, f.name, f.got, f.all, ErrMergeConflict)
			}
		}
		if out.ProfilePath == "" {
			out.ProfilePath = r.ProfilePath
		}
		if !r.Start.IsZero() && (out.Start.IsZero() || r.Start.Before(out.Start)) {
			out.Start = r.Start
		}
		if r.End.After(out.End) {
			out.End = r.End
		}
		out.Interrupted = out.Interrupted || r.Interrupted
		if r.Broker != "" && !slices.Contains(brokers, r.Broker) {
			brokers = append(brokers, r.Broker)
		}
		c := r.clone()
		out.Errors = append(out.Errors, c.Errors...)
		for _, d := range c.Devices {
			if j, dup := owner[d.Name]; dup {
				return nil, fmt.Errorf("reports: merge: device %q is in shards %d and %d: %w", d.Name, j, i, ErrMergeConflict)
			}
			owner[d.Name] = i
			out.Devices = append(out.Devices, d)
		}
	}
	out.Broker = strings.Join(brokers, "; ")
	out.Devices = sortedDevices(out)
	return out, nil
}
