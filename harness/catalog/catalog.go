package catalog

import "slices"

// Capability IDs: the six NIST IR 8259A capabilities and hilt's two extra groups of checks,
// retirement (NIST IR 8259 §4.2.5) and maker information (NIST IR 8259 Activity 6).
const (
	CapDI  = "DI"
	CapDC  = "DC"
	CapDP  = "DP"
	CapLA  = "LA"
	CapSU  = "SU"
	CapCSA = "CSA"
	CapRT  = "RT"
	CapIN  = "IN"
)

// Destructive kinds: what a check does to a unit that the unit does not undo by itself.
// A profile can forbid each kind (profile.Destructive).
const (
	DestructiveWipe        = "wipe"         // decommissions the unit
	DestructiveVersionBump = "version_bump" // installs a newer image for good
	DestructivePowerCut    = "power_cut"    // cuts power during a write
)

// Capability is one group of checks, in report order.
type Capability struct {
	ID   string // "DI", ..., "CSA", "RT", "IN"
	Name string // "Device Identification"
}

var capabilities = []Capability{
	{CapDI, "Device Identification"},
	{CapDC, "Device Configuration"},
	{CapDP, "Data Protection"},
	{CapLA, "Logical Access to Interfaces"},
	{CapSU, "Software Update"},
	{CapCSA, "Cybersecurity State Awareness"},
	{CapRT, "Retirement"},
	{CapIN, "Information the maker declares"},
}

// Capabilities returns the capabilities in report order: DI, DC, DP, LA, SU, CSA, RT, IN.
func Capabilities() []Capability { return slices.Clone(capabilities) }

// Check is one entry of the catalog. IDs are stable: checks are added with new IDs, never
// renumbered or reused.
type Check struct {
	ID    string // "DI-01"
	Title string // short and human, without the ID
	// Capability is one of the Cap* constants. The CSA capability's checks have IDs CS-xx.
	Capability string
	NIST       []string // 8259A elements, unprefixed: "DI-1"
	ETSI       []string // EN 303 645 provisions, unprefixed: "5.4-4"
	// Destructive is "" or one of the Destructive* constants.
	Destructive string
	Action      string // what the harness does
	PassWhen    string // what the device must show to pass
}

// Requirements returns the prefixed IDs of the requirements c traces to, 8259A elements
// first: "8259A:SU-2", "EN303645:5.3-10".
func (c Check) Requirements() []string {
	out := make([]string, 0, len(c.NIST)+len(c.ETSI))
	for _, n := range c.NIST {
		out = append(out, PrefixNIST+n)
	}
	for _, e := range c.ETSI {
		out = append(out, PrefixETSI+e)
	}
	return out
}

func (c Check) clone() Check {
	c.NIST = slices.Clone(c.NIST)
	c.ETSI = slices.Clone(c.ETSI)
	return c
}

// Checks returns every check of the catalog, in catalog order. The slice is the caller's.
func Checks() []Check {
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = c.clone()
	}
	return out
}

// Lookup returns the check with the given ID.
func Lookup(id string) (Check, bool) {
	i, ok := checkIndex[id]
	if !ok {
		return Check{}, false
	}
	return checks[i].clone(), true
}

// Order returns the position of the check id in catalog order, or -1 when id is not a
// catalog check. Reports sort by it.
func Order(id string) int {
	if i, ok := checkIndex[id]; ok {
		return i
	}
	return -1
}

var checkIndex = func() map[string]int {
	m := make(map[string]int, len(checks))
	for i, c := range checks {
		m[c.ID] = i
	}
	return m
}()

func l(s ...string) []string { return s }

// checks is the catalog: one row of the design's BASELINE.md each.
var checks = []Check{
	// DI — Device Identification
	{ID: "DI-01", Title: "logical ID consistent on every transport", Capability: CapDI,
		NIST: l("DI-1"), ETSI: l("5.4-4"),
		Action:   "read the logical ID over every transport (serial, MQTT, network API/TLS certificate)",
		PassWhen: "the same ID on every transport, well-formed"},
	{ID: "DI-02", Title: "logical ID unique across instances", Capability: CapDI,
		NIST: l("DI-1"), ETSI: l("5.4-4"),
		Action:   "read the IDs of two or more instances of the same firmware",
		PassWhen: "all distinct"},
	{ID: "DI-03", Title: "logical ID stable across reboot and update", Capability: CapDI,
		NIST: l("DI-1"), Destructive: DestructiveVersionBump,
		Action:   "reboot; apply an update; read the ID again",
		PassWhen: "unchanged"},
	{ID: "DI-04", Title: "physical identifier bound to the logical ID", Capability: CapDI,
		NIST:     l("DI-2"),
		Action:   "compare the physical identifier (label, banner, declared location) with the logical ID",
		PassWhen: "bound as declared"},
	{ID: "DI-05", Title: "identity proven with a per-device key", Capability: CapDI,
		NIST: l("DI-1"), ETSI: l("5.4-4"),
		Action: "challenge-response: the device signs a fresh nonce with its per-device key",
		PassWhen: "the signature verifies against the key bound to that ID (declared, or pinned at first contact), " +
			"not a key the device hands over with the answer; keys differ across instances"},

	// DC — Device Configuration
	{ID: "DC-01", Title: "authorized configuration change persists", Capability: CapDC,
		NIST:     l("DC-1"),
		Action:   "authorized change of a setting; reboot",
		PassWhen: "changed, and persists"},
	{ID: "DC-02", Title: "unauthorized configuration change rejected", Capability: CapDC,
		NIST: l("DC-2"), ETSI: l("5.5-4"),
		Action:   "change with no, wrong and low-privilege credentials, on every transport",
		PassWhen: "rejected; setting unchanged; event logged"},
	{ID: "DC-03", Title: "secure configuration restorable", Capability: CapDC,
		NIST:     l("DC-3"),
		Action:   "change several settings, then restore the secure configuration",
		PassWhen: "equals the declared secure configuration"},
	{ID: "DC-04", Title: "invalid configuration values rejected", Capability: CapDC,
		NIST: l("DC-1"), ETSI: l("5.13-1a"),
		Action:   "malformed, oversized and out-of-range values",
		PassWhen: "rejected with an error; the device keeps working"},

	// DP — Data Protection
	{ID: "DP-01", Title: "traffic encrypted, no secrets in cleartext", Capability: CapDP,
		NIST: l("DP-1"), ETSI: l("5.5-1"),
		Action: "capture the device's traffic in its default secure configuration " +
			"(telemetry, broker login, management API use), decode it",
		PassWhen: "at least one flow of each declared kind was seen, and every one is TLS; " +
			"no credential or telemetry secret in cleartext, in any encoding"},
	{ID: "DP-02", Title: "untrusted server certificate refused", Capability: CapDP,
		NIST: l("DP-1"), ETSI: l("5.5-1"),
		Action:   "offer the device a server with an untrusted certificate",
		PassWhen: "the device refuses to connect or send"},
	{ID: "DP-03", Title: "secrets not stored in the clear", Capability: CapDP,
		NIST: l("DP-1"), ETSI: l("5.4-1"),
		Action: "after provisioning secrets, scan the device's storage (sim data dir, QEMU disk image) " +
			"for them, raw and encoded (hex, base64, UTF-16)",
		PassWhen: "none found; the key that protects them is not on that storage in the clear"},
	{ID: "DP-04", Title: "cryptography setting enforced", Capability: CapDP,
		NIST: l("DP-3"), ETSI: l("5.5-1"),
		Action:   "change a cryptography setting (e.g. minimum TLS version)",
		PassWhen: "the device enforces it"},

	// LA — Logical Access to Interfaces
	{ID: "LA-01", Title: "only declared ports open", Capability: CapLA,
		NIST: l("LA-1"), ETSI: l("5.6-1"),
		Action:   "scan all TCP ports and the declared UDP ports",
		PassWhen: "every open port is declared"},
	{ID: "LA-02", Title: "disableable interfaces can be disabled", Capability: CapLA,
		NIST: l("LA-1"), ETSI: l("5.6-1", "5.6-4"),
		Action:   "disable each declared disableable interface, probe it, re-enable it",
		PassWhen: "unreachable while disabled (port closed / no console login); back after enable"},
	{ID: "LA-03", Title: "interfaces require valid credentials", Capability: CapLA,
		NIST: l("LA-2"), ETSI: l("5.5-4"),
		Action:   "each interface with no, wrong and valid credentials",
		PassWhen: "only valid credentials succeed"},
	{ID: "LA-04", Title: "no shared or default credentials", Capability: CapLA,
		NIST: l("LA-2"), ETSI: l("5.1-1", "5.1-2"),
		Action:   "compare credentials across instances; try well-known default passwords",
		PassWhen: "no shared or default credential works"},
	{ID: "LA-05", Title: "failed-login lockout as declared", Capability: CapLA,
		NIST: l("LA-3"), ETSI: l("5.1-5"),
		Action:   "N failed logins; time the attempts; change the threshold; disable lockout",
		PassWhen: "lockout/delay as declared; threshold configurable; can be disabled"},

	// SU — Software Update
	{ID: "SU-01", Title: "signed newer image installs and runs", Capability: CapSU,
		NIST: l("SU-1", "SU-2"), ETSI: l("5.3-2"), Destructive: DestructiveVersionBump,
		Action: "install a correctly signed newer image carrying a fresh nonce (over each declared update channel)",
		PassWhen: "the running image reveals that nonce (not just the manifest's version string), " +
			"after a reboot too"},
	{ID: "SU-02", Title: "unsigned image rejected", Capability: CapSU,
		NIST: l("SU-2"), ETSI: l("5.3-10"),
		Action:   "offer an unsigned image",
		PassWhen: "rejected; version unchanged; the device works"},
	{ID: "SU-03", Title: "image signed with an unknown key rejected", Capability: CapSU,
		NIST: l("SU-2"), ETSI: l("5.3-10"),
		Action:   "offer an image signed with an unknown key",
		PassWhen: "rejected"},
	{ID: "SU-04", Title: "tampered payload rejected", Capability: CapSU,
		NIST: l("SU-2"), ETSI: l("5.3-2", "5.7-1"),
		Action:   "offer an image with one payload byte flipped, header and manifest intact",
		PassWhen: "rejected"},
	{ID: "SU-05", Title: "downgrade rejected", Capability: CapSU,
		NIST: l("SU-2", "SU-3"), ETSI: l("5.3-2"), Destructive: DestructiveVersionBump,
		Action:   "offer a correctly signed older version",
		PassWhen: "rejected unless through the declared authorized rollback"},
	{ID: "SU-06", Title: "truncated or oversized image rejected", Capability: CapSU,
		NIST: l("SU-2"), ETSI: l("5.3-2"),
		Action:   "offer a truncated image and an oversized image",
		PassWhen: "rejected; running image intact"},
	{ID: "SU-07", Title: "update requires authorization", Capability: CapSU,
		NIST: l("SU-4"), ETSI: l("5.3-2"),
		Action:   "update without and with wrong credentials",
		PassWhen: "rejected"},
	{ID: "SU-08", Title: "updating can be disabled", Capability: CapSU,
		NIST: l("SU-5", "SU-6"), ETSI: l("5.3-6"),
		Action:   "disable updating; try an update; re-enable",
		PassWhen: "refused while disabled"},
	{ID: "SU-09", Title: "power loss during update leaves a bootable image", Capability: CapSU,
		NIST: l("SU-1"), ETSI: l("5.9-2"), Destructive: DestructivePowerCut,
		Action:   "cut power at several points while an update is written (emulated device)",
		PassWhen: "boots a valid image every time"},
	{ID: "SU-10", Title: "authorized rollback works", Capability: CapSU,
		NIST: l("SU-3"), Destructive: DestructiveVersionBump,
		Action:   "authorized rollback, where declared",
		PassWhen: "the previous version runs"},

	// CSA — Cybersecurity State Awareness
	{ID: "CS-01", Title: "security events logged", Capability: CapCSA,
		NIST: l("CSA-1"), ETSI: l("5.7-2"),
		Action:   "cause failed logins, a rejected update, a config change, an interface change",
		PassWhen: "each appears as a timestamped security event"},
	{ID: "CS-02", Title: "security events published", Capability: CapCSA,
		NIST:     l("CSA-5"),
		Action:   "listen where events are declared to go (MQTT topic, log server)",
		PassWhen: "the events arrive there"},
	{ID: "CS-03", Title: "security state readable and clearable only with authorization", Capability: CapCSA,
		NIST:     l("CSA-3", "CSA-4"),
		Action:   "read and clear the state without and with authorization",
		PassWhen: "only authorized reads; nobody edits or clears it"},
	{ID: "CS-04", Title: "degraded state reported", Capability: CapCSA,
		NIST: l("CSA-2"), ETSI: l("5.7-2"),
		Action:   "make the device degraded (e.g. a tampered stored image)",
		PassWhen: "it reports degraded, not normal"},

	// RT — Retirement
	{ID: "RT-01", Title: "decommission restores the factory state", Capability: CapRT,
		NIST: l("DP-2"), ETSI: l("5.11-1"), Destructive: DestructiveWipe,
		Action: "provision user data and settings, then decommission",
		PassWhen: "factory state: settings default, user data and owner credentials gone; " +
			"the factory identity stays"},
	{ID: "RT-02", Title: "old owner locked out after decommission", Capability: CapRT,
		NIST: l("DP-2"), ETSI: l("5.11-1"), Destructive: DestructiveWipe,
		Action:   "try the old owner's credentials after decommission; provision as a new owner",
		PassWhen: "old ones fail; new ones work"},
	{ID: "RT-03", Title: "no owner secrets left on storage", Capability: CapRT,
		NIST: l("DP-2"), ETSI: l("5.11-1"), Destructive: DestructiveWipe,
		Action:   "scan storage (sim data dir, QEMU disk image) for the old owner's secrets, raw and encoded",
		PassWhen: "none left anywhere (backups, logs, free blocks included)"},
	{ID: "RT-04", Title: "unauthorized decommission refused", Capability: CapRT,
		NIST: l("DC-2"), Destructive: DestructiveWipe,
		Action:   "decommission without authorization",
		PassWhen: "refused"},

	// IN — Information the maker declares
	{ID: "IN-01", Title: "software inventory matches the SBOM", Capability: CapIN,
		ETSI:     l("5.2-3"),
		Action:   "ask the device for its software inventory",
		PassWhen: "matches the declared SBOM"},
	{ID: "IN-02", Title: "support period declared and current", Capability: CapIN,
		ETSI:     l("5.3-13"),
		Action:   "read the declared support period and the device's own report of it",
		PassWhen: "present, consistent, not expired on the day of the run"},
	{ID: "IN-03", Title: "vulnerability-reporting contact given", Capability: CapIN,
		ETSI:     l("5.2-1"),
		Action:   "read the vulnerability-reporting contact",
		PassWhen: "declared, well-formed"},
	{ID: "IN-04", Title: "update-signing key matches the declaration", Capability: CapIN,
		ETSI:     l("5.3-10"),
		Action:   "compare the declared update-signing key fingerprint with the device's",
		PassWhen: "equal"},
}
