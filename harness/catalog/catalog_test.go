package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestCatalogShape(t *testing.T) {
	idPattern := regexp.MustCompile(`^(DI|DC|DP|LA|SU|CS|RT|IN)-\d\d$`)
	caps := map[string]bool{}
	for _, c := range Capabilities() {
		caps[c.ID] = true
	}
	reqs := map[string]bool{}
	for _, r := range Requirements() {
		if reqs[r.Label()] {
			t.Errorf("requirement %s listed twice", r.Label())
		}
		reqs[r.Label()] = true
	}
	seen := map[string]bool{}
	for i, c := range Checks() {
		if !idPattern.MatchString(c.ID) {
			t.Errorf("check %q: ID not of the form XX-00", c.ID)
		}
		if seen[c.ID] {
			t.Errorf("check %s listed twice", c.ID)
		}
		seen[c.ID] = true
		if !caps[c.Capability] {
			t.Errorf("check %s: capability %q is not a catalog capability", c.ID, c.Capability)
		}
		wantPrefix := c.Capability
		if c.Capability == CapCSA {
			wantPrefix = "CS"
		}
		if !strings.HasPrefix(c.ID, wantPrefix+"-") {
			t.Errorf("check %s: capability %s, want ID prefix %s-", c.ID, c.Capability, wantPrefix)
		}
		if c.Title == "" || c.Action == "" || c.PassWhen == "" {
			t.Errorf("check %s: empty title, action or pass-when", c.ID)
		}
		if strings.Contains(c.Title, c.ID) {
			t.Errorf("check %s: title %q repeats the ID", c.ID, c.Title)
		}
		for _, r := range c.Requirements() {
			if !reqs[r] {
				t.Errorf("check %s traces to %s, which is not a catalog requirement", c.ID, r)
			}
		}
		if got := Order(c.ID); got != i {
			t.Errorf("Order(%s) = %d, want %d", c.ID, got, i)
		}
		if got, ok := Lookup(c.ID); !ok || got.ID != c.ID {
			t.Errorf("Lookup(%s) = %v, %v", c.ID, got.ID, ok)
		}
	}
	if got, want := len(seen), 40; got != want {
		t.Errorf("got %d checks, want %d", got, want)
	}
	if _, ok := Lookup("DI-99"); ok {
		t.Error("Lookup(DI-99) found a check")
	}
	if got := Order("DI-99"); got != -1 {
		t.Errorf("Order(DI-99) = %d, want -1", got)
	}
}

func TestDestructive(t *testing.T) {
	want := map[string]string{
		"RT-01": DestructiveWipe, "RT-02": DestructiveWipe, "RT-03": DestructiveWipe, "RT-04": DestructiveWipe,
		"SU-01": DestructiveVersionBump, "SU-05": DestructiveVersionBump, "SU-10": DestructiveVersionBump,
		"DI-03": DestructiveVersionBump, "SU-09": DestructivePowerCut,
	}
	for _, c := range Checks() {
		if c.Destructive != want[c.ID] {
			t.Errorf("%s: destructive %q, want %q", c.ID, c.Destructive, want[c.ID])
		}
	}
}

func TestChecksReturnsCopies(t *testing.T) {
	cs := Checks()
	cs[0].NIST[0] = "XX-9"
	cs[0].Title = "changed"
	c, _ := Lookup(cs[0].ID)
	if c.NIST[0] == "XX-9" || c.Title == "changed" {
		t.Fatal("mutating the result of Checks changed the registry")
	}
}

func TestRequirementCounts(t *testing.T) {
	if got, want := len(NISTElements()), 22; got != want {
		t.Errorf("got %d 8259A elements, want %d", got, want)
	}
	perClause := map[string]int{}
	for _, r := range ETSIProvisions() {
		clause, _, _ := strings.Cut(r.ID, "-")
		perClause[clause]++
		if r.Standard != StandardETSI || r.Title == "" {
			t.Errorf("provision %s: standard %q, title %q", r.ID, r.Standard, r.Title)
		}
	}
	want := map[string]int{"5.1": 5, "5.2": 3, "5.3": 16, "5.4": 4, "5.5": 8, "5.6": 9, "5.7": 2,
		"5.8": 3, "5.9": 3, "5.10": 1, "5.11": 4, "5.12": 3, "5.13": 1, "6": 5}
	for clause, n := range want {
		if perClause[clause] != n {
			t.Errorf("clause %s: got %d provisions, want %d", clause, perClause[clause], n)
		}
	}
	if len(perClause) != len(want) {
		t.Errorf("got clauses %v, want those of %v", perClause, want)
	}
	for _, tc := range []struct {
		label string
		ok    bool
	}{{"8259A:SU-2", true}, {"EN303645:5.13-1a", true}, {"EN303645:6-5", true}, {"SU-2", false}, {"8259A:SU-7", false}} {
		if _, ok := LookupRequirement(tc.label); ok != tc.ok {
			t.Errorf("LookupRequirement(%q): got ok=%v, want %v", tc.label, ok, tc.ok)
		}
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		id   string
		want []string
	}{
		{"DI-01", []string{"DI-01", "cap:DI", "8259A:DI-1", "EN303645:5.4-4"}},
		{"SU-01", []string{"SU-01", "cap:SU", "8259A:SU-1", "8259A:SU-2", "EN303645:5.3-2", "destructive:version_bump"}},
		{"LA-02", []string{"LA-02", "cap:LA", "8259A:LA-1", "EN303645:5.6-1", "EN303645:5.6-4"}},
		{"CS-03", []string{"CS-03", "cap:CSA", "8259A:CSA-3", "8259A:CSA-4"}},
		{"RT-04", []string{"RT-04", "cap:RT", "8259A:DC-2", "destructive:wipe"}},
		{"SU-09", []string{"SU-09", "cap:SU", "8259A:SU-1", "EN303645:5.9-2", "destructive:power_cut"}},
		{"IN-02", []string{"IN-02", "cap:IN", "EN303645:5.3-13"}},
		{"XX-01", nil},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if got := Labels(tc.id); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLabelsAreGinkgoLabels checks that Ginkgo accepts every label as it is.
func TestLabelsAreGinkgoLabels(t *testing.T) {
	for lb := range KnownLabels() {
		got, err := types.ValidateAndCleanupLabel(lb, types.CodeLocation{})
		if err != nil || got != lb {
			t.Errorf("label %q: Ginkgo gives %q, %v", lb, got, err)
		}
	}
}

// TestCatalogMatchesBaseline reads the design's BASELINE.md (shared/ beside the repository)
// and compares each table row with the catalog.
func TestCatalogMatchesBaseline(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "design", "BASELINE.md")
	data, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("read the baseline: %v", err)
		}
		t.Skipf("no baseline to compare with: %v", err)
	}
	row := regexp.MustCompile(`(?m)^\| ([A-Z]{2}-\d\d) \| ([^|]*) \| ([^|]*) \|`)
	element := regexp.MustCompile(`(DI|DC|DP|LA|SU|CSA)-\d`)
	provision := regexp.MustCompile(`\d+(\.\d+)?-\d+[a-z]?`)
	rows := row.FindAllStringSubmatch(string(data), -1)
	var ids []string
	for _, m := range rows {
		id := m[1]
		ids = append(ids, id)
		c, ok := Lookup(id)
		if !ok {
			t.Errorf("%s: in the baseline, not in the catalog", id)
			continue
		}
		if got, want := c.NIST, element.FindAllString(m[2], -1); !slices.Equal(got, want) {
			t.Errorf("%s: 8259A %q, baseline says %q", id, got, want)
		}
		want := provision.FindAllString(m[3], -1)
		for i, p := range want {
			// EN 303 645 V2.1.1 numbers the input-validation provision 5.13-1a.
			if p == "5.13-1" {
				want[i] = "5.13-1a"
			}
		}
		if got := c.ETSI; !slices.Equal(got, want) {
			t.Errorf("%s: EN 303 645 %q, baseline says %q", id, got, want)
		}
	}
	var catalogIDs []string
	for _, c := range Checks() {
		catalogIDs = append(catalogIDs, c.ID)
	}
	if !slices.Equal(ids, catalogIDs) {
		t.Errorf("baseline rows %q, catalog %q", ids, catalogIDs)
	}
}

// TestLabelsDoc checks that docs/LABELS.md lists every check with its title and labels.
func TestLabelsDoc(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "LABELS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		var quoted []string
		for _, lb := range Labels(c.ID)[1:] {
			quoted = append(quoted, "`"+lb+"`")
		}
		row := fmt.Sprintf("| %s | %s | %s |\n", c.ID, c.Title, strings.Join(quoted, " "))
		if !strings.Contains(string(data), row) {
			t.Errorf("docs/LABELS.md lacks the row %q", row)
		}
	}
}
