package reports

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces a secret in the reports.
const Redacted = "[REDACTED]"

// Redactor replaces secrets (passwords, keys, tokens) in report text. Each secret is
// recognised raw and in the encodings a transcript or a message is likely to carry it in:
// hex (either case), base64 (standard and URL alphabets, with and without padding) and URL
// query escaping. The zero Redactor and a nil *Redactor redact nothing.
type Redactor struct {
	replacer *strings.Replacer
}

// NewRedactor returns a Redactor for the given secrets; empty strings are ignored. A very
// short secret is redacted wherever it appears, even inside ordinary words.
func NewRedactor(secrets ...string) *Redactor {
	var forms []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		b := []byte(s)
		forms = append(forms, s,
			hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
			url.QueryEscape(s), url.PathEscape(s))
	}
	// Longest first: strings.Replacer tries the old strings in argument order at each
	// position, and a secret that contains another must win.
	slices.SortFunc(forms, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	forms = slices.Compact(forms)
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Redacted)
	}
	return &Redactor{replacer: strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced by Redacted.
func (r *Redactor) String(s string) string {
	if r == nil || r.replacer == nil || s == "" {
		return s
	}
	return r.replacer.Replace(s)
}

// Run returns a copy of run with every secret replaced in its text: the broker, the harness
// errors, device errors and properties, and each check's title, reason, output, repro
// command and evidence descriptions. IDs, verdicts, paths and digests are left alone.
func (r *Redactor) Run(run *Run) *Run {
	if run == nil {
		return nil
	}
	out := run.clone()
	r.redact(out)
	return out
}

// redact redacts run in place.
func (r *Redactor) redact(run *Run) {
	run.Broker = r.String(run.Broker)
	for i := range run.Errors {
		run.Errors[i] = r.String(run.Errors[i])
	}
	for i := range run.Devices {
		d := &run.Devices[i]
		d.Error = r.String(d.Error)
		for k, v := range d.Properties {
			d.Properties[k] = r.String(v)
		}
		for j := range d.Checks {
			c := &d.Checks[j]
			c.Title = r.String(c.Title)
			c.Reason = r.String(c.Reason)
			c.Output = r.String(c.Output)
			c.Repro = r.String(c.Repro)
			for k := range c.Evidence {
				c.Evidence[k].Description = r.String(c.Evidence[k].Description)
			}
		}
	}
}
