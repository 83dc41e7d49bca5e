package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"time"
)

// Validity is how long every certificate made here stays valid: one run, at most a day.
const Validity = 24 * time.Hour

// clockSkew backdates NotBefore so that a device whose clock runs a little behind the
// host's still accepts a certificate made a moment ago.
const clockSkew = 5 * time.Minute

// ErrNoHosts is returned when a server certificate is asked for with no host names.
var ErrNoHosts = errors.New("pki: a server certificate needs at least one host")

// CA is a run-scoped certificate authority (ECDSA P-256).
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// Leaf is a certificate issued by a CA, with its private key, both PEM-encoded.
type Leaf struct {
	// CertPEM is the leaf certificate alone (CERTIFICATE block).
	CertPEM []byte
	// KeyPEM is the private key (PKCS #8, PRIVATE KEY block).
	KeyPEM []byte
	// Hosts are the names and addresses the certificate is valid for.
	Hosts []string
}

// NewCA makes a new self-signed CA named commonName, valid for Validity from now.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %q: generate key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"hilt test bench (run-scoped, TEST ONLY)"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %q: self-sign: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %q: parse: %w", commonName, err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA's certificate in PEM, as devices and clients are given it.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// WriteCert writes the CA certificate (PEM) to path, mode 0644.
func (ca *CA) WriteCert(path string) error {
	if err := os.WriteFile(path, ca.certPEM, 0o644); err != nil {
		return fmt.Errorf("pki: write CA certificate %s: %w", path, err)
	}
	return nil
}

// IssueServer issues a server certificate for hosts: IP addresses become IP SANs, anything
// else a DNS SAN. The first host is also the subject common name.
func (ca *CA) IssueServer(hosts []string) (*Leaf, error) {
	if len(hosts) == 0 {
		return nil, ErrNoHosts
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: server certificate for %v: generate key: %w", hosts, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: server certificate for %v: %w", hosts, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: server certificate for %v: sign: %w", hosts, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: server certificate for %v: marshal key: %w", hosts, err)
	}
	return &Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Hosts:   append([]string(nil), hosts...),
	}, nil
}

// UntrustedServerCert issues a server certificate for hosts from a fresh throwaway CA that
// nobody trusts: a device that completes a TLS handshake with it does not verify its server.
func UntrustedServerCert(hosts []string) (*Leaf, error) {
	ca, err := NewCA("hilt untrusted throwaway CA (TEST ONLY)")
	if err != nil {
		return nil, err
	}
	return ca.IssueServer(hosts)
}

// TLSCertificate returns the leaf as a tls.Certificate for a server.
func (l *Leaf) TLSCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: certificate for %v: %w", l.Hosts, err)
	}
	return c, nil
}

// WriteFiles writes the certificate (mode 0644) and the key (mode 0600) to the given paths.
func (l *Leaf) WriteFiles(certPath, keyPath string) error {
	if err := os.WriteFile(certPath, l.CertPEM, 0o644); err != nil {
		return fmt.Errorf("pki: write certificate %s: %w", certPath, err)
	}
	if err := os.WriteFile(keyPath, l.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("pki: write key %s: %w", keyPath, err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}
