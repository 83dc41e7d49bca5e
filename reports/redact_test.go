package reports

import (
	"reflect"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"raw", []string{"s3cret!"}, "login admin s3cret! ok", "login admin [REDACTED] ok"},
		{"twice", []string{"pw"}, "pw pw", "[REDACTED] [REDACTED]"},
		{"hex lower", []string{"key=z"}, "payload 6b65793d7a.", "payload [REDACTED]."},
		{"hex upper", []string{"key=z"}, "payload 6B65793D7A.", "payload [REDACTED]."},
		{"base64", []string{"s3cret!"}, "Authorization: Basic czNjcmV0IQ==", "Authorization: Basic [REDACTED]"},
		{"base64 without padding", []string{"s3cret!"}, "tok=czNjcmV0IQ;", "tok=[REDACTED];"},
		{"url escaped", []string{"a b&c"}, "pass=a+b%26c", "pass=[REDACTED]"},
		{"longer secret wins", []string{"pass", "password1"}, "password1 pass", "[REDACTED] [REDACTED]"},
		{"empty secrets ignored", []string{"", "x1"}, "abc x1", "abc [REDACTED]"},
		{"nothing to redact", []string{"zzz"}, "clean text", "clean text"},
		{"no secrets", nil, "clean text", "clean text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewRedactor(tc.secrets...).String(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	var nilRedactor *Redactor
	if got := nilRedactor.String("x"); got != "x" {
		t.Errorf("nil redactor: got %q", got)
	}
}

func TestRedactorRun(t *testing.T) {
	// secretRun has a secret in every text field.
	secretRun := func() *Run {
		run := fixtureRun()
		run.Devices[0].Checks[0].Evidence = []Evidence{{Path: "e/" + secretPassword, Description: "has " + secretPassword}}
		run.Devices[0].Error = "login " + secretPassword + " refused"
		run.Errors = append(run.Errors, "broker: "+secretBroker)
		return run
	}
	run := secretRun()
	got := NewRedactor(secretPassword, secretBroker).Run(run)
	if !reflect.DeepEqual(run, secretRun()) {
		t.Error("Run changed its argument")
	}
	var texts []string
	texts = append(texts, got.Broker)
	texts = append(texts, got.Errors...)
	for _, d := range got.Devices {
		texts = append(texts, d.Error)
		for _, v := range d.Properties {
			texts = append(texts, v)
		}
		for _, c := range d.Checks {
			texts = append(texts, c.Title, c.Reason, c.Output, c.Repro)
			for _, e := range c.Evidence {
				texts = append(texts, e.Description)
			}
		}
	}
	for _, s := range texts {
		if strings.Contains(s, secretPassword) || strings.Contains(s, secretBroker) {
			t.Errorf("not redacted: %q", s)
		}
	}
	// Paths are left alone: they name files on disk.
	if p := got.Devices[0].Checks[0].Evidence[0].Path; p != "e/"+secretPassword {
		t.Errorf("evidence path changed to %q", p)
	}
	if (*Redactor)(nil).Run(nil) != nil {
		t.Error("Run(nil) is not nil")
	}
}
