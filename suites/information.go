package suites

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// dayLayout is how dates are written in info (YYYY-MM-DD).
const dayLayout = "2006-01-02"

// keyFingerprintRE is a key fingerprint as docs/PROTOCOL.md defines it.
var keyFingerprintRE = regexp.MustCompile(`^SHA256:[0-9a-f]{64}$`)

// information holds the IN checks: what the maker declares (NIST IR 8259 Activity 6).
func (e *Env) information() {
	e.check("IN-01", func(ctx SpecContext, c *C) {
		if e.S.Decl == nil || e.S.Decl.SBOM == "" {
			c.Failf("the declarations name no SBOM (sbom): there is no declared inventory to hold the device to")
		}
		path := e.S.Decl.ResolveDecl(e.S.Decl.SBOM)
		declared, err := readCycloneDX(path)
		if err != nil {
			c.Errorf("read the declared SBOM: %v", err)
		}
		info := e.infoNow(ctx, c)
		b, _ := json.MarshalIndent(info.Inventory, "", "  ")
		c.writeEvidence("inventory.json", "software inventory the device reports (info.inventory)", b)
		if len(declared) == 0 && len(info.Inventory) == 0 {
			c.Errorf("the SBOM %s lists no sbomComponent and the device reports none: nothing to compare", path)
		}
		reported := make([]sbomComponent, 0, len(info.Inventory))
		for _, x := range info.Inventory {
			reported = append(reported, sbomComponent{x.Name, x.Version})
		}
		if diff := inventoryDiff(declared, reported); len(diff) > 0 {
			c.Failf("the software inventory the device reports differs from the declared SBOM %s:\n- %s", path, strings.Join(diff, "\n- "))
		}
		c.Note("%d components reported, as in the SBOM %s", len(reported), path)
	})

	e.check("IN-02", func(ctx SpecContext, c *C) {
		if e.S.Decl == nil || e.S.Decl.Support.Months <= 0 {
			c.Failf("the declarations give no support period (support.months)")
		}
		sup := e.S.Decl.Support
		if sup.From != "" && sup.From != "build" {
			c.Errorf("the declared support period runs from %q; hilt knows only \"build\" (the firmware build date)", sup.From)
		}
		info := e.infoNow(ctx, c)
		if info.BuildDate == "" || info.SupportEnd == "" {
			c.Failf("the device does not report its support period: build_date %q, support_end %q", info.BuildDate, info.SupportEnd)
		}
		built, err := time.Parse(dayLayout, info.BuildDate)
		if err != nil {
			c.Failf("the build date the device reports, %q, is not YYYY-MM-DD", info.BuildDate)
		}
		end, err := time.Parse(dayLayout, info.SupportEnd)
		if err != nil {
			c.Failf("the support end the device reports, %q, is not YYYY-MM-DD", info.SupportEnd)
		}
		if want := supportEnds(built, sup.Months); !containsDay(want, end) {
			c.Failf("the device reports support until %s; the declared %d months from its build date %s end on %s",
				info.SupportEnd, sup.Months, info.BuildDate, want[0].Format(dayLayout))
		}
		today := time.Now().UTC().Truncate(24 * time.Hour)
		if !end.After(today) {
			c.Failf("the support period ended on %s (today is %s)", info.SupportEnd, today.Format(dayLayout))
		}
		c.Note("built %s, supported %d months, until %s", info.BuildDate, sup.Months, info.SupportEnd)
	})

	e.check("IN-03", func(ctx SpecContext, c *C) {
		declared := ""
		if e.S.Decl != nil {
			declared = e.S.Decl.VulnContact
		}
		if declared == "" {
			c.Failf("the declarations give no vulnerability-reporting contact (vuln_contact)")
		}
		if err := checkContact(declared); err != nil {
			c.Failf("the declared vulnerability-reporting contact %q is not well-formed: %v", declared, err)
		}
		info := e.infoNow(ctx, c)
		if info.VulnContact != declared {
			c.Failf("the device gives the vulnerability-reporting contact %q; the declared one is %q", info.VulnContact, declared)
		}
		c.Note("vulnerability reports go to %s", declared)
	})

	e.check("IN-04", func(ctx SpecContext, c *C) {
		declared := ""
		if e.S.Decl != nil {
			declared = e.S.Decl.UpdatePolicy.KeyFingerprint
		}
		if declared == "" {
			c.Failf("the declarations give no update-signing key fingerprint (update.key_fingerprint)")
		}
		if !keyFingerprintRE.MatchString(declared) {
			c.Failf("the declared key fingerprint %q is not SHA256:<64 lower-case hex digits>", declared)
		}
		if e.SigningKey != nil {
			if own := image.Fingerprint(e.SigningKey.Public().(ed25519.PublicKey)); own != declared {
				c.Errorf("the profile is inconsistent: its signing key's fingerprint is %s, the declared one %s", own, declared)
			}
		}
		info := e.infoNow(ctx, c)
		if info.UpdateKeyFingerprint != declared {
			c.Failf("the device verifies updates with the key %q; the declared key is %q", info.UpdateKeyFingerprint, declared)
		}
		c.Note("update key %s as declared", declared)
	})
}

// infoNow reads info on the console.
func (e *Env) infoNow(ctx SpecContext, c *C) wire.Info {
	info, err := e.S.Info(ctx, wire.IfaceConsole)
	c.Must(err, "read info on the console")
	return info
}

// sbomComponent is one name and version of a software inventory.
type sbomComponent struct{ name, version string }

func (x sbomComponent) String() string { return x.name + " " + x.version }

// readCycloneDX reads the components of a CycloneDX JSON SBOM, nested ones included;
// metadata.sbomComponent (the product itself) is not one of them.
func readCycloneDX(path string) ([]sbomComponent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type cdxComponent struct {
		Name       string         `json:"name"`
		Version    string         `json:"version"`
		Components []cdxComponent `json:"components"`
	}
	var doc struct {
		BOMFormat  string         `json:"bomFormat"`
		Components []cdxComponent `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.BOMFormat != "CycloneDX" {
		return nil, fmt.Errorf("%s: bomFormat is %q, not CycloneDX", path, doc.BOMFormat)
	}
	var out []sbomComponent
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for _, x := range cs {
			out = append(out, sbomComponent{x.Name, x.Version})
			walk(x.Components)
		}
	}
	walk(doc.Components)
	return out, nil
}

// inventoryDiff lists what differs between the declared and the reported inventory.
func inventoryDiff(declared, reported []sbomComponent) []string {
	count := func(cs []sbomComponent) map[sbomComponent]int {
		m := map[sbomComponent]int{}
		for _, x := range cs {
			m[x]++
		}
		return m
	}
	d, r := count(declared), count(reported)
	versions := func(m map[sbomComponent]int, name string) []string {
		var vs []string
		for x := range m {
			if x.name == name {
				vs = append(vs, x.version)
			}
		}
		sort.Strings(vs)
		return vs
	}
	var out []string
	for x, n := range d {
		if r[x] >= n {
			continue
		}
		if vs := versions(r, x.name); len(vs) > 0 && r[x] == 0 {
			out = append(out, fmt.Sprintf("%s: declared version %s, the device reports %s", x.name, x.version, strings.Join(vs, ", ")))
			continue
		}
		out = append(out, fmt.Sprintf("%s is declared in the SBOM but not reported by the device", x))
	}
	for x, n := range r {
		if d[x] >= n || len(versions(d, x.name)) > 0 && d[x] == 0 {
			continue // a version difference, listed above
		}
		out = append(out, fmt.Sprintf("%s is reported by the device but not declared in the SBOM", x))
	}
	sort.Strings(out)
	return out
}

// supportEnds returns the day months after built: as time.AddDate normalises it and, when
// the day does not exist in that month, the month's last day.
func supportEnds(built time.Time, months int) []time.Time {
	norm := built.AddDate(0, months, 0)
	first := time.Date(built.Year(), built.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, months, 0)
	clamped := first.AddDate(0, 1, -1)
	if built.Day() < clamped.Day() {
		clamped = first.AddDate(0, 0, built.Day()-1)
	}
	return []time.Time{norm, clamped}
}

func containsDay(days []time.Time, d time.Time) bool {
	for _, x := range days {
		if x.Equal(d) {
			return true
		}
	}
	return false
}

// checkContact says why a vulnerability-reporting contact is not a mailto: address or an
// https URL.
func checkContact(s string) error {
	if addr, ok := strings.CutPrefix(s, "mailto:"); ok {
		addr, _, _ = strings.Cut(addr, "?")
		a, err := mail.ParseAddress(addr)
		if err != nil {
			return fmt.Errorf("mailto: %w", err)
		}
		if a.Address != addr || !strings.Contains(addr[strings.LastIndexByte(addr, '@')+1:], ".") {
			return fmt.Errorf("mailto: %q is not a plain address", addr)
		}
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https":
		return fmt.Errorf("want a mailto: address or an https URL")
	case u.Host == "":
		return fmt.Errorf("the URL has no host")
	}
	return nil
}
