package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hilt-project/hilt/harness/profile"
)

// writeProfile builds the bench's device profile and writes it to <dir>/profile.yaml.
// Paths in it are absolute (profile.Resolve keeps absolute paths as they are).
func (b *Bench) writeProfile() error {
	fx, err := installFixtures(b.dir, findRepo(b.opts.Exe))
	if err != nil {
		return err
	}
	decl := fx[declarationsRel]
	if b.opts.DeclarationsPath != "" {
		decl = b.opts.DeclarationsPath
	}
	h := b.broker.harness()
	p := &profile.Profile{
		Model:            ModelLabel,
		Backend:          profile.BackendSim,
		DeclarationsFile: decl,
		Timeouts: profile.Timeouts{
			Command: profile.Duration{Duration: 5 * time.Second},
			Boot:    profile.Duration{Duration: b.opts.BootTimeout},
			Check:   profile.Duration{Duration: 120 * time.Second},
		},
		Broker: profile.Broker{
			URL:         b.broker.harnessURL(),
			CAFile:      b.broker.caFile(),
			Username:    h.Username,
			Password:    h.Password,
			TopicPrefix: b.opts.TopicPrefix,
			Kind:        b.broker.kind(),
		},
		Update: profile.Update{SigningKey: fx[signingKeyRel]},
	}
	for _, d := range b.devices {
		di := d.info()
		in := profile.Instance{
			Name:             di.Name,
			Serial:           profile.Serial{Port: di.SerialPath, Baud: 115200},
			Address:          di.Address.String(),
			Address6:         addrOrEmpty(di.Address6),
			HarnessAddress:   di.HarnessAddress.String(),
			CaptureInterface: di.HostIf,
			ControlAddress:   addrOrEmpty(di.ControlAddress),
			Admin:            di.Admin,
			MQTT:             di.MQTT,
			Storage:          profile.Storage{DataDir: di.DataDir, KeystoreDir: di.HWDir},
			Label:            profile.Label{File: filepath.Join(di.HWDir, "label.txt")},
			PubKey:           di.PubKey,
		}
		p.Instances = append(p.Instances, in)
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	header := fmt.Sprintf("# written by the hilt simulated bench for run %s: valid while the bench runs\n", b.net.RunID())
	if fb := b.net.Fallback(); fb != nil {
		header += "# no network namespaces: " + fb.Reason + " (no capture interface; control_address set)\n"
	}
	path := filepath.Join(b.dir, "profile.yaml")
	if err := os.WriteFile(path, append([]byte(header), out...), 0o600); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	b.prof, b.profilePath = p, path
	p.Path = path
	return nil
}
