package catalog

import "slices"

// Standards a Requirement belongs to.
const (
	StandardNIST = "NIST IR 8259A"
	StandardETSI = "ETSI EN 303 645"
)

// Prefixes of requirement IDs in labels and reports: "8259A:SU-2", "EN303645:5.3-10".
const (
	PrefixNIST = "8259A:"
	PrefixETSI = "EN303645:"
)

// Requirement is one NIST IR 8259A core-baseline element or one ETSI EN 303 645 V2.1.1
// provision.
type Requirement struct {
	ID       string // unprefixed: "SU-2", "5.3-10"
	Title    string // short
	Standard string // StandardNIST or StandardETSI
}

// Label returns the prefixed ID used in labels and reports: "8259A:SU-2", "EN303645:5.3-10".
func (r Requirement) Label() string {
	switch r.Standard {
	case StandardNIST:
		return PrefixNIST + r.ID
	case StandardETSI:
		return PrefixETSI + r.ID
	}
	return r.ID
}

// NISTElements returns every element of the NIST IR 8259A core baseline, in document order.
func NISTElements() []Requirement { return slices.Clone(nistElements) }

// ETSIProvisions returns every provision of ETSI EN 303 645 V2.1.1 (clauses 5 and 6), in
// document order, whatever its status (mandatory, recommended, conditional).
func ETSIProvisions() []Requirement { return slices.Clone(etsiProvisions) }

// Requirements returns NISTElements followed by ETSIProvisions.
func Requirements() []Requirement { return slices.Concat(nistElements, etsiProvisions) }

// LookupRequirement returns the requirement with the given prefixed ID ("8259A:SU-2").
func LookupRequirement(label string) (Requirement, bool) {
	r, ok := requirementIndex[label]
	return r, ok
}

var requirementIndex = func() map[string]Requirement {
	m := make(map[string]Requirement, len(nistElements)+len(etsiProvisions))
	for _, r := range slices.Concat(nistElements, etsiProvisions) {
		m[r.Label()] = r
	}
	return m
}()

func nist(id, title string) Requirement { return Requirement{id, title, StandardNIST} }
func etsi(id, title string) Requirement { return Requirement{id, title, StandardETSI} }

var nistElements = []Requirement{
	nist("DI-1", "unique logical identifier"),
	nist("DI-2", "unique physical identifier, accessible to authorized entities"),
	nist("DC-1", "authorized entities can change the configuration"),
	nist("DC-2", "only authorized entities can change the configuration"),
	nist("DC-3", "authorized entities can restore a secure configuration"),
	nist("DP-1", "proven cryptography for data at rest and in transit"),
	nist("DP-2", "authorized entities can render all data inaccessible"),
	nist("DP-3", "cryptography is configurable"),
	nist("LA-1", "unneeded local and network interfaces can be disabled"),
	nist("LA-2", "each interface restricted to authorized entities"),
	nist("LA-3", "failed-authentication lockout is configurable"),
	nist("SU-1", "software can be updated remotely and/or locally"),
	nist("SU-2", "updates verified and authenticated before install"),
	nist("SU-3", "authorized rollback to a previous version"),
	nist("SU-4", "only authorized entities can update"),
	nist("SU-5", "updating can be enabled and disabled"),
	nist("SU-6", "update settings: automatic or manual, notifications"),
	nist("CSA-1", "reports its cybersecurity state"),
	nist("CSA-2", "tells expected from degraded operation"),
	nist("CSA-3", "state readable only by authorized entities"),
	nist("CSA-4", "state editable only by those who maintain it"),
	nist("CSA-5", "state can be sent to another system"),
}

var etsiProvisions = []Requirement{
	etsi("5.1-1", "passwords unique per device or set by the user"),
	etsi("5.1-2", "pre-installed passwords resist automated attacks"),
	etsi("5.1-3", "authentication uses best-practice cryptography"),
	etsi("5.1-4", "simple way to change the authentication value"),
	etsi("5.1-5", "brute force on network authentication impracticable"),
	etsi("5.2-1", "vulnerability disclosure policy published"),
	etsi("5.2-2", "disclosed vulnerabilities acted on in time"),
	etsi("5.2-3", "vulnerabilities monitored, identified and rectified"),
	etsi("5.3-1", "all software components securely updateable"),
	etsi("5.3-2", "update mechanism for secure installation"),
	etsi("5.3-3", "updates simple for the user to apply"),
	etsi("5.3-4", "automatic update mechanisms"),
	etsi("5.3-5", "checks for security updates after init and periodically"),
	etsi("5.3-6", "automatic updates and notifications configurable"),
	etsi("5.3-7", "best-practice cryptography for updates"),
	etsi("5.3-8", "security updates timely"),
	etsi("5.3-9", "device verifies updates' authenticity and integrity"),
	etsi("5.3-10", "network updates verified through a trust relationship"),
	etsi("5.3-11", "user told when a security update is required"),
	etsi("5.3-12", "user told when an update disrupts basic function"),
	etsi("5.3-13", "defined support period published"),
	etsi("5.3-14", "non-updateable devices: rationale and replacement published"),
	etsi("5.3-15", "non-updateable devices isolable, hardware replaceable"),
	etsi("5.3-16", "model designation recognizable"),
	etsi("5.4-1", "sensitive security parameters stored securely"),
	etsi("5.4-2", "hard-coded device identity resists tampering"),
	etsi("5.4-3", "no hard-coded critical security parameters in source"),
	etsi("5.4-4", "update and communication CSPs unique per device"),
	etsi("5.5-1", "best-practice cryptography to communicate"),
	etsi("5.5-2", "reviewed or evaluated network and crypto implementations"),
	etsi("5.5-3", "cryptographic algorithms updateable"),
	etsi("5.5-4", "network functionality only after authentication"),
	etsi("5.5-5", "security-relevant network config only after authentication"),
	etsi("5.5-6", "critical security parameters encrypted in transit"),
	etsi("5.5-7", "confidentiality of CSPs sent over remote interfaces"),
	etsi("5.5-8", "secure management of critical security parameters"),
	etsi("5.6-1", "unused network and logical interfaces disabled"),
	etsi("5.6-2", "minimal unauthenticated disclosure of security information"),
	etsi("5.6-3", "physical interfaces not unnecessarily exposed"),
	etsi("5.6-4", "physically accessible debug interface disabled in software"),
	etsi("5.6-5", "only used or required software services enabled"),
	etsi("5.6-6", "code minimized to necessary functionality"),
	etsi("5.6-7", "software runs with least privilege"),
	etsi("5.6-8", "hardware-level memory access control"),
	etsi("5.6-9", "secure development processes"),
	etsi("5.7-1", "software verified by secure boot"),
	etsi("5.7-2", "unauthorized software change detected and alerted"),
	etsi("5.8-1", "personal data protected in transit"),
	etsi("5.8-2", "sensitive personal data protected in transit"),
	etsi("5.8-3", "external sensing capabilities documented"),
	etsi("5.9-1", "resilience to network and power outages"),
	etsi("5.9-2", "works locally without network; recovers after power loss"),
	etsi("5.9-3", "connects to networks in an orderly, expected state"),
	etsi("5.10-1", "telemetry examined for security anomalies"),
	etsi("5.11-1", "user data erasable from the device simply"),
	etsi("5.11-2", "personal data removable from associated services"),
	etsi("5.11-3", "clear instructions for deleting personal data"),
	etsi("5.11-4", "clear confirmation that personal data was deleted"),
	etsi("5.12-1", "installation and maintenance in minimal, secure steps"),
	etsi("5.12-2", "guidance on secure setup"),
	etsi("5.12-3", "guidance on checking secure setup"),
	etsi("5.13-1a", "input from user interfaces, APIs and networks validated"),
	etsi("6-1", "clear information on personal data processing"),
	etsi("6-2", "valid consent for personal data processing"),
	etsi("6-3", "consent can be withdrawn at any time"),
	etsi("6-4", "telemetry personal data kept to the minimum"),
	etsi("6-5", "consumers told what telemetry is collected and why"),
}
