// Package profile loads and validates hilt device profiles: how to reach each unit of a
// device model (serial, network, MQTT, storage), the credentials the harness uses, and the
// maker's declarations the checks hold the device to. docs/PROFILE.md documents the format.
package profile

import "time"

// Backend says who starts the devices of a profile.
type Backend string

// Backends: hilt starts sim and qemu devices itself and only connects to external ones.
const (
	BackendSim      Backend = "sim"
	BackendQEMU     Backend = "qemu"
	BackendExternal Backend = "external"
)

// Profile is one device model under test and its units.
type Profile struct {
	// Path is the file the profile was loaded from (not part of the YAML).
	Path string `yaml:"-"`
	// Digest is the SHA-256 of the profile file's bytes (not part of the YAML).
	Digest string `yaml:"-"`

	Model   string  `yaml:"model"`
	Backend Backend `yaml:"backend"`
	// DeclarationsFile is the maker's declaration file, relative to the profile.
	DeclarationsFile string        `yaml:"declarations"`
	Declarations     *Declarations `yaml:"-"`

	Timeouts    Timeouts    `yaml:"timeouts"`
	Destructive Destructive `yaml:"destructive"`
	Broker      Broker      `yaml:"broker"`
	Update      Update      `yaml:"update"`
	// QEMU holds how hilt boots emulated units (backend qemu only).
	QEMU      *QEMU      `yaml:"qemu,omitempty"`
	Instances []Instance `yaml:"instances"`
}

// Timeouts bound the harness's waits on a device.
type Timeouts struct {
	Command Duration `yaml:"command"` // one request/response; default 5s
	Boot    Duration `yaml:"boot"`    // reboot to ready; default 30s
	Check   Duration `yaml:"check"`   // one whole check; default 120s
}

// Destructive says which checks that wipe or permanently change a unit may run.
// On by default for sim and qemu, off by default for external units.
type Destructive struct {
	Wipe        *bool `yaml:"wipe,omitempty"`         // decommission (RT-*)
	VersionBump *bool `yaml:"version_bump,omitempty"` // installing newer images (SU-01, SU-05, SU-10, DI-03)
	PowerCut    *bool `yaml:"power_cut,omitempty"`    // SU-09
}

// Broker is how the harness reaches the MQTT broker the devices use.
type Broker struct {
	URL         string `yaml:"url"` // mqtts://host:port or mqtt://host:port
	CAFile      string `yaml:"ca_file,omitempty"`
	Username    string `yaml:"username,omitempty"`
	Password    string `yaml:"password,omitempty"`
	TopicPrefix string `yaml:"topic_prefix"`
	// Kind names the broker for the report: "embedded", "mosquitto", or free text.
	Kind string `yaml:"kind,omitempty"`
}

// Update holds what the harness needs to build update images.
type Update struct {
	// SigningKey is the maker's (test) ed25519 private key in PEM (PKCS #8), relative to the profile.
	SigningKey string `yaml:"signing_key,omitempty"`
	// Images are pre-signed images for units whose maker key the harness does not hold.
	Images map[string]string `yaml:"images,omitempty"`
}

// QEMU is how hilt boots emulated units.
type QEMU struct {
	Kernel    string `yaml:"kernel,omitempty"`
	Initramfs string `yaml:"initramfs,omitempty"`
	MemoryMB  int    `yaml:"memory_mb,omitempty"`
	// Control is the unix socket of the hilt process that runs the emulated units: the
	// checks ask it for power cuts and storage scans. hilt run writes it into the runtime
	// profile; a static profile leaves it empty.
	Control string `yaml:"control,omitempty"`
}

// Instance is one unit of the model.
type Instance struct {
	Name   string `yaml:"name"`
	Serial Serial `yaml:"serial"`
	// Address is the unit's own IP address; network probing touches only this.
	Address string `yaml:"address"`
	// Address6 is the unit's own IPv6 address, where it has one besides Address; checks that
	// must find every way into the unit (LA-02) probe it as well.
	Address6 string `yaml:"address6,omitempty"`
	// HarnessAddress is the harness's address as the unit reaches it (for servers the harness offers it).
	HarnessAddress string `yaml:"harness_address,omitempty"`
	// CaptureInterface is the host interface that carries all of the unit's traffic.
	CaptureInterface string `yaml:"capture_interface,omitempty"`
	// ControlAddress, when set, is an address with no device on it that shares the unit's
	// host stack (loopback fallback): ports open there cannot be attributed to the unit.
	ControlAddress string     `yaml:"control_address,omitempty"`
	Admin          Credential `yaml:"admin"`
	// MQTT is the unit's own broker account (a secret the harness hunts for in captures).
	MQTT    Credential `yaml:"mqtt,omitempty"`
	Storage Storage    `yaml:"storage,omitempty"`
	Label   Label      `yaml:"label,omitempty"`
	// QMP is the QEMU monitor socket of an emulated unit (power and storage control).
	QMP string `yaml:"qmp,omitempty"`
	// BootToReady is how long the unit took from power-on to ready, when hilt started it.
	BootToReady Duration `yaml:"boot_to_ready,omitempty"`
	// PubKey is the unit's identity key (base64 ed25519) as recorded at the factory; when empty
	// the harness pins the key it reads at first contact.
	PubKey string `yaml:"pubkey,omitempty"`
}

// Serial is a console port.
type Serial struct {
	Port string `yaml:"port"`
	Baud int    `yaml:"baud,omitempty"` // default 115200
}

// Credential is a user name and password.
type Credential struct {
	User string `yaml:"user"`
	Pass string `yaml:"pass"`
}

// Storage is where the harness can read a unit's flash and key store.
type Storage struct {
	DataDir     string `yaml:"data_dir,omitempty"`
	KeystoreDir string `yaml:"keystore_dir,omitempty"`
	DiskImage   string `yaml:"disk_image,omitempty"`
}

// Label is the unit's physical label: a file to read, or the text an operator typed in.
type Label struct {
	File string `yaml:"file,omitempty"`
	Text string `yaml:"text,omitempty"`
}

// Declarations are the maker's static statements about the model (like an ETSI ICS/IXIT).
// Nothing in the harness fills them in by asking a device.
type Declarations struct {
	Path   string `yaml:"-"`
	Model  string `yaml:"model"`
	Vendor string `yaml:"vendor,omitempty"`

	Identity      Identity          `yaml:"identity"`
	Interfaces    []Interface       `yaml:"interfaces"`
	UDPPorts      []int             `yaml:"udp_ports,omitempty"`
	Flows         []Flow            `yaml:"flows"`
	SecureConfig  SecureConfig      `yaml:"secure_config"`
	Lockout       Lockout           `yaml:"lockout"`
	UpdatePolicy  UpdatePolicy      `yaml:"update"`
	Support       Support           `yaml:"support"`
	VulnContact   string            `yaml:"vuln_contact"`
	SBOM          string            `yaml:"sbom"` // CycloneDX JSON, relative to the declarations file
	Events        Events            `yaml:"events"`
	Storage       DeclStorage       `yaml:"storage,omitempty"`
	NotApplicable []NotApplicable   `yaml:"not_applicable,omitempty"`
	Extra         map[string]string `yaml:"extra,omitempty"`
}

// Identity says what a unit's identifiers look like and how the label binds to the ID.
type Identity struct {
	IDPattern string `yaml:"id_pattern"` // regular expression a logical ID matches
	// LabelBinding is a template the physical label contains, with {id} for the logical ID.
	LabelBinding string `yaml:"label_binding"`
}

// Interface is one declared logical interface.
type Interface struct {
	Name        string `yaml:"name"` // console, mgmt, mqtt, debug, ...
	Kind        string `yaml:"kind"` // serial, tcp, mqtt-client
	Port        int    `yaml:"port,omitempty"`
	TLS         bool   `yaml:"tls,omitempty"`
	Auth        bool   `yaml:"auth"`
	Disableable bool   `yaml:"disableable"`
	// Default is the state in the secure configuration: on or off.
	Default string `yaml:"default,omitempty"`
}

// Flow is one kind of traffic the unit sends in its default secure configuration.
type Flow struct {
	Name string `yaml:"name"` // mqtt, mgmt
	Port int    `yaml:"port"` // server port of the flow
	// Direction: "out" (the unit connects) or "in" (clients connect to the unit).
	Direction string `yaml:"direction"`
}

// SecureConfig is the configuration the maker defines as secure, restored by config.restore.
type SecureConfig struct {
	Settings   map[string]string `yaml:"settings"`
	Interfaces map[string]bool   `yaml:"interfaces"`
}

// Lockout is the declared policy after failed authentications.
type Lockout struct {
	Threshold    int  `yaml:"threshold"`
	Seconds      int  `yaml:"seconds"`
	Configurable bool `yaml:"configurable"`
	Disableable  bool `yaml:"disableable"`
}

// UpdatePolicy is the declared update behaviour.
type UpdatePolicy struct {
	Channels       []string `yaml:"channels"` // console, mqtt, mgmt
	Rollback       string   `yaml:"rollback"` // "command" (update.rollback) or "none"
	MaxSize        int64    `yaml:"max_size"`
	KeyFingerprint string   `yaml:"key_fingerprint"`
	Disableable    bool     `yaml:"disableable"`
}

// Support is the declared support period.
type Support struct {
	// Months after the firmware build date ("from: build") during which updates are provided.
	Months int    `yaml:"months"`
	From   string `yaml:"from"` // "build"
}

// Events says where security events go.
type Events struct {
	// MQTTTopic is a template with {prefix} and {id}.
	MQTTTopic string `yaml:"mqtt_topic"`
}

// DeclStorage says where on a unit's storage the harness finds what some checks handle.
type DeclStorage struct {
	// ImageSlots are the files (relative to the data folder) holding the stored firmware
	// images; CS-04 tampers with the inactive one to make the unit degraded.
	ImageSlots []string `yaml:"image_slots,omitempty"`
}

// NotApplicable declares a check that does not apply to the model, with the reason.
type NotApplicable struct {
	Check  string `yaml:"check"`
	Reason string `yaml:"reason"`
}

// Duration is a time.Duration written as "5s" in YAML.
type Duration struct{ time.Duration }

// Addresses returns the unit's own addresses: Address, then Address6 when it is set.
func (in *Instance) Addresses() []string {
	var out []string
	for _, a := range []string{in.Address, in.Address6} {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}
