package sim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hilt-project/hilt/harness/profile"
)

const repoRoot = "../.."

// TestEmbeddedFixturesMatch fails when a fixture changed and its embedded copy did not.
func TestEmbeddedFixturesMatch(t *testing.T) {
	for rel, embedded := range fixtureFiles {
		t.Run(rel, func(t *testing.T) {
			orig, err := os.ReadFile(filepath.Join(repoRoot, rel))
			if errors.Is(err, fs.ErrNotExist) {
				t.Skipf("%s not in this checkout", rel)
			}
			if err != nil {
				t.Fatal(err)
			}
			cp, err := assets.ReadFile(embedded)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(orig, cp) {
				t.Errorf("harness/sim/%s differs from %s: run `go generate ./harness/sim`", embedded, rel)
			}
		})
	}
}

// TestDeclarations checks the reference device's declarations against what they state
// facts about: the update key's fingerprint and the protocol's secure defaults.
func TestDeclarations(t *testing.T) {
	d, err := profile.LoadDeclarations(filepath.Join(repoRoot, declarationsRel))
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(repoRoot, "fixtures/keys/TEST-ONLY-maker-update.pub"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("maker public key: no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		t.Fatalf("maker public key is %T, want ed25519", pub)
	}
	sum := sha256.Sum256(edPub)
	if want := "SHA256:" + hex.EncodeToString(sum[:]); d.UpdatePolicy.KeyFingerprint != want {
		t.Errorf("update.key_fingerprint = %s, want %s", d.UpdatePolicy.KeyFingerprint, want)
	}
	wantSettings := map[string]string{
		"telemetry_interval": "5", "ntp_server": "pool.ntp.org", "lockout_threshold": "5",
		"lockout_seconds": "30", "update_enabled": "true", "tls_min": "1.2",
	}
	for k, v := range wantSettings {
		if got := d.SecureConfig.Settings[k]; got != v {
			t.Errorf("secure_config.settings.%s = %q, want %q", k, got, v)
		}
	}
	if len(d.SecureConfig.Settings) != len(wantSettings) {
		t.Errorf("secure_config.settings has %d keys, want %d", len(d.SecureConfig.Settings), len(wantSettings))
	}
	wantIfaces := map[string]bool{"console": true, "mgmt": true, "mqtt": true, "debug": false}
	for k, v := range wantIfaces {
		if got, ok := d.SecureConfig.Interfaces[k]; !ok || got != v {
			t.Errorf("secure_config.interfaces.%s = %v (set %v), want %v", k, got, ok, v)
		}
	}
	if d.Model != ModelLabel {
		t.Errorf("model %q, want %q (the factory's model label, carried by update manifests)", d.Model, ModelLabel)
	}
	if _, err := os.Stat(d.ResolveDecl(d.SBOM)); err != nil {
		t.Errorf("sbom: %v", err)
	}
}

// TestInstallFixtures checks that a run folder gets the fixtures with the repository's
// layout, from a checkout and from the embedded copies alike.
func TestInstallFixtures(t *testing.T) {
	for _, repo := range []string{repoRoot, ""} {
		dir := t.TempDir()
		got, err := installFixtures(dir, repo)
		if err != nil {
			t.Fatalf("repo %q: %v", repo, err)
		}
		d, err := profile.LoadDeclarations(got[declarationsRel])
		if err != nil {
			t.Fatalf("repo %q: %v", repo, err)
		}
		if _, err := os.Stat(d.ResolveDecl(d.SBOM)); err != nil {
			t.Errorf("repo %q: the declarations' SBOM is not beside them: %v", repo, err)
		}
		if _, err := os.Stat(got[signingKeyRel]); err != nil {
			t.Errorf("repo %q: signing key: %v", repo, err)
		}
	}
	if findRepo("") == "" {
		t.Errorf("findRepo from the package folder found no checkout")
	}
}
