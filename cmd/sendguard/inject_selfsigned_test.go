package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The flags of `inject serve --self-signed-secret` are checked before
// anything is contacted; the API server side is in kube_test.go.
func TestInjectServeSelfSignedFlags(t *testing.T) {
	good := []string{"inject", "serve", "--self-signed-secret", "sendguard-system/sg-tls", "--webhook-config", "sg", "--dns-names", "sg.sendguard-system.svc"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no slash", []string{"inject", "serve", "--self-signed-secret", "sg-tls", "--webhook-config", "sg", "--dns-names", "a"}, "want NAMESPACE/NAME"},
		{"empty name", []string{"inject", "serve", "--self-signed-secret", "ns/", "--webhook-config", "sg", "--dns-names", "a"}, "want NAMESPACE/NAME"},
		{"two slashes", []string{"inject", "serve", "--self-signed-secret", "ns/a/b", "--webhook-config", "sg", "--dns-names", "a"}, "want NAMESPACE/NAME"},
		{"no webhook", []string{"inject", "serve", "--self-signed-secret", "ns/a", "--dns-names", "a"}, "needs --webhook-config"},
		{"webhook alone", []string{"inject", "serve", "--webhook-config", "sg", "--dns-names", "a"}, "want NAMESPACE/NAME"},
		{"no names", []string{"inject", "serve", "--self-signed-secret", "ns/a", "--webhook-config", "sg", "--dns-names", " "}, "needs --dns-names"},
		{"both modes", append(append([]string{}, good...), "--tls-cert", "c", "--tls-key", "k"), "not both"},
		{"zero interval", append(append([]string{}, good...), "--cert-check-interval", "0s"), "positive duration"},
		{"not in a cluster", append(append([]string{}, good...), "--kube-ca-file", "testdata/nope.crt"), "API server"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), c.args, noenv, nil, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", c.args, err, c.want)
			}
		})
	}
}
