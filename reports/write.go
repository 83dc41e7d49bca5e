package reports

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Output file names that WriteAll writes into the output folder.
const (
	JUnitFile          = "junit.xml"
	ComplianceJSONFile = "compliance.json"
	ComplianceMDFile   = "compliance.md"
)

// Option changes how WriteAll and Summary write.
type Option func(*options)

type options struct {
	redactor *Redactor
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithRedactor replaces every secret r knows in the reports' text (reasons, output, repro
// commands, errors, evidence descriptions, device properties, the broker) with Redacted.
func WithRedactor(r *Redactor) Option {
	return func(o *options) { o.redactor = r }
}

// WriteAll writes junit.xml, compliance.json and compliance.md into dir, creating dir if
// needed. Each file is written to a temporary file in dir and renamed into place, so that a
// reader never sees half a report. Before writing, it fills in the SHA-256 of every evidence
// file that exists under dir, and applies the redactor given WithRedactor; run itself is not
// changed. Every file that can be written is written; the error joins everything that went
// wrong, including evidence files that exist but cannot be hashed and evidence paths that
// leave dir.
func WriteAll(dir string, run *Run, opts ...Option) error {
	if err := checkSchema(run); err != nil {
		return err
	}
	o := collect(opts)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("reports: create output folder: %w", err)
	}
	out := run.clone()
	errs := []error{hashEvidence(dir, out)}
	if o.redactor != nil {
		o.redactor.redact(out)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, *Run) error
	}{
		{JUnitFile, WriteJUnit},
		{ComplianceJSONFile, WriteComplianceJSON},
		{ComplianceMDFile, WriteComplianceMarkdown},
	} {
		var buf bytes.Buffer
		if err := f.write(&buf, out); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, writeFileAtomic(filepath.Join(dir, f.name), buf.Bytes()))
	}
	return errors.Join(errs...)
}

// hashEvidence fills in Evidence.SHA256 for every evidence file that exists under dir.
func hashEvidence(dir string, run *Run) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("reports: open output folder: %w", err)
	}
	defer root.Close()
	var errs []error
	for i := range run.Devices {
		d := &run.Devices[i]
		for j := range d.Checks {
			c := &d.Checks[j]
			for k := range c.Evidence {
				e := &c.Evidence[k]
				sum, err := hashFile(root, e.Path)
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					errs = append(errs, fmt.Errorf("reports: evidence of %s on %s: %w", c.ID, d.Name, err))
				default:
					e.SHA256 = sum
				}
			}
		}
	}
	return errors.Join(errs...)
}

func hashFile(root *os.Root, path string) (string, error) {
	if !filepath.IsLocal(filepath.FromSlash(path)) {
		return "", fmt.Errorf("evidence path %q is not inside the output folder", path)
	}
	f, err := root.Open(filepath.FromSlash(path))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it to path.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("reports: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("reports: write %s: %w", path, err)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
