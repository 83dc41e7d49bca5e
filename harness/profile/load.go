package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid profile")

// FieldError names a field of a profile file that is wrong, and where.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// UnmarshalYAML reads a duration such as "5s" or "1m30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 5s, 2m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.Duration.String(), nil }

// Load reads, defaults and validates a profile and the declarations it names.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	p, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	if p.DeclarationsFile != "" {
		d, err := LoadDeclarations(p.Resolve(p.DeclarationsFile))
		if err != nil {
			return nil, err
		}
		p.Declarations = d
	}
	return p, nil
}

// Parse decodes and validates a profile's bytes; path names it in errors and anchors
// relative paths. Declarations are not loaded.
func Parse(path string, b []byte) (*Profile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, &FieldError{File: path, Line: yamlLine(err), Field: "(syntax)", Msg: err.Error()}
	}
	p := &Profile{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, &FieldError{File: path, Line: yamlLine(err), Field: "(structure)", Msg: err.Error()}
	}
	sum := sha256.Sum256(b)
	p.Path, p.Digest = path, "sha256:"+hex.EncodeToString(sum[:])
	p.applyDefaults()
	if err := p.validate(&root); err != nil {
		return nil, err
	}
	return p, nil
}

// Resolve makes a path from the profile relative to the profile's folder.
func (p *Profile) Resolve(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(filepath.Dir(p.Path), rel)
}

// Allowed says whether a destructive kind ("wipe", "version_bump", "power_cut") may run.
func (p *Profile) Allowed(kind string) bool {
	var v *bool
	switch kind {
	case "wipe":
		v = p.Destructive.Wipe
	case "version_bump":
		v = p.Destructive.VersionBump
	case "power_cut":
		v = p.Destructive.PowerCut
	default:
		return true
	}
	return v != nil && *v
}

// Instance returns the named instance.
func (p *Profile) Instance(name string) (*Instance, bool) {
	for i := range p.Instances {
		if p.Instances[i].Name == name {
			return &p.Instances[i], true
		}
	}
	return nil, false
}

func (p *Profile) applyDefaults() {
	if p.Timeouts.Command.Duration == 0 {
		p.Timeouts.Command.Duration = 5 * time.Second
	}
	if p.Timeouts.Boot.Duration == 0 {
		p.Timeouts.Boot.Duration = 30 * time.Second
	}
	if p.Timeouts.Check.Duration == 0 {
		p.Timeouts.Check.Duration = 120 * time.Second
	}
	def := p.Backend != BackendExternal
	for _, f := range []**bool{&p.Destructive.Wipe, &p.Destructive.VersionBump, &p.Destructive.PowerCut} {
		if *f == nil {
			v := def
			*f = &v
		}
	}
	if p.Broker.TopicPrefix == "" {
		p.Broker.TopicPrefix = "hilt"
	}
	for i := range p.Instances {
		if p.Instances[i].Serial.Baud == 0 {
			p.Instances[i].Serial.Baud = 115200
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (p *Profile) validate(root *yaml.Node) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{File: p.Path, Line: lineOf(root, field), Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	switch p.Backend {
	case BackendSim, BackendQEMU, BackendExternal:
	case "":
		bad("backend", "missing; want sim, qemu or external")
	default:
		bad("backend", "%q is not a backend; want sim, qemu or external", p.Backend)
	}
	if p.Model == "" {
		bad("model", "missing")
	}
	if p.DeclarationsFile == "" {
		bad("declarations", "missing: the maker's declaration file is required")
	}
	if len(p.Instances) == 0 {
		bad("instances", "no instances: list at least one unit")
	}
	if p.Broker.URL != "" && !hasAnyPrefix(p.Broker.URL, "mqtt://", "mqtts://", "tcp://", "ssl://", "tls://") {
		bad("broker.url", "%q: want mqtt://host:port or mqtts://host:port", p.Broker.URL)
	}
	seen := map[string]bool{}
	for i, in := range p.Instances {
		f := fmt.Sprintf("instances[%d]", i)
		if !nameRE.MatchString(in.Name) {
			bad(f+".name", "%q: want 1-32 of a-z 0-9 _ - (it names evidence folders)", in.Name)
		}
		if seen[in.Name] {
			bad(f+".name", "%q is used twice", in.Name)
		}
		seen[in.Name] = true
		if p.Backend == BackendExternal || in.Address != "" {
			if net.ParseIP(in.Address) == nil {
				bad(f+".address", "%q is not an IP address", in.Address)
			}
		}
		if in.Address6 != "" {
			switch a, err := netip.ParseAddr(in.Address6); {
			case err != nil:
				bad(f+".address6", "%q is not an IP address", in.Address6)
			case !a.Is6() || a.Is4In6():
				bad(f+".address6", "%q is not an IPv6 address (the IPv4 one goes in address)", in.Address6)
			case in.Address != "" && net.ParseIP(in.Address).Equal(net.IP(a.AsSlice())):
				bad(f+".address6", "%q is the address already given in address", in.Address6)
			}
		}
		if p.Backend == BackendExternal && in.Serial.Port == "" {
			bad(f+".serial.port", "missing: the console port of the unit")
		}
		if in.HarnessAddress != "" && net.ParseIP(in.HarnessAddress) == nil {
			bad(f+".harness_address", "%q is not an IP address", in.HarnessAddress)
		}
		if in.Serial.Baud < 0 {
			bad(f+".serial.baud", "%d: must be positive", in.Serial.Baud)
		}
	}
	return errors.Join(errs...)
}

func hasAnyPrefix(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// lineOf finds the line of a dotted field path such as "instances[1].serial.port";
// it returns the nearest line it can find, or 0.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &idx)
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				line, next = n.Content[j].Line, n.Content[j+1]
				break
			}
		}
		n = next
		if n != nil && idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

// LoadDeclarations reads a maker's declaration file.
func LoadDeclarations(path string) (*Declarations, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read declarations: %w", err)
	}
	d := &Declarations{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil {
		return nil, &FieldError{File: path, Line: yamlLine(err), Field: "(structure)", Msg: err.Error()}
	}
	d.Path = path
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{File: path, Line: lineOf(&root, field), Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if d.Identity.IDPattern != "" {
		if _, err := regexp.Compile(d.Identity.IDPattern); err != nil {
			bad("identity.id_pattern", "not a regular expression: %v", err)
		}
	}
	for i, f := range d.Interfaces {
		if f.Name == "" {
			bad(fmt.Sprintf("interfaces[%d].name", i), "missing")
		}
		if f.Kind == "tcp" && (f.Port <= 0 || f.Port > 65535) {
			bad(fmt.Sprintf("interfaces[%d].port", i), "%d is not a TCP port", f.Port)
		}
	}
	for i, na := range d.NotApplicable {
		if na.Reason == "" {
			bad(fmt.Sprintf("not_applicable[%d].reason", i), "a check declared not applicable needs a reason (%s)", na.Check)
		}
	}
	return d, errors.Join(errs...)
}

// ResolveDecl makes a path from the declarations relative to their file.
func (d *Declarations) ResolveDecl(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(filepath.Dir(d.Path), rel)
}

// Interface returns the declared interface with that name.
func (d *Declarations) Interface(name string) (Interface, bool) {
	for _, f := range d.Interfaces {
		if f.Name == name {
			return f, true
		}
	}
	return Interface{}, false
}

// NotApplicableReason returns the declared reason a check does not apply, if any.
func (d *Declarations) NotApplicableReason(check string) (string, bool) {
	for _, na := range d.NotApplicable {
		if na.Check == check {
			return na.Reason, true
		}
	}
	return "", false
}
