package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/testport"
)

var updateInject = flag.Bool("update-inject", false, "rewrite testdata/inject/*.golden.yaml")

var injectFlags = []string{"--sendguard-image", "example.com/sendguard:1.2.3", "--envoy-image", "example.com/envoy:v1.40.0", "--injector-version", "1.2.3"}

// withoutEnvoyConfig replaces each rendered Envoy config (the list item
// after "- --config-yaml" and its continuation lines) with a placeholder;
// internal/inject's tests check that config against envoy/sidecar.yaml.
func withoutEnvoyConfig(s string) string {
	lines := strings.Split(s, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		if strings.TrimSpace(lines[i]) != "- --config-yaml" || i+1 >= len(lines) {
			continue
		}
		indent := lines[i][:strings.Index(lines[i], "-")]
		out = append(out, indent+"- ENVOY_CONFIG")
		i += 2
		for i < len(lines) && strings.HasPrefix(lines[i], indent+"  ") {
			i++
		}
		i--
	}
	return strings.Join(out, "\n")
}

func TestInjectGolden(t *testing.T) {
	in := "testdata/inject/manifests.in.yaml"
	src, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var fromFile, fromStdin, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"inject", "-f", in}, injectFlags...), noenv, nil, &fromFile, &stderr); err != nil {
		t.Fatalf("inject -f %s: %v\n%s", in, err, stderr.String())
	}
	if err := run(context.Background(), append([]string{"inject", "-f", "-"}, injectFlags...), noenv, bytes.NewReader(src), &fromStdin, &stderr); err != nil {
		t.Fatalf("inject -f -: %v", err)
	}
	if fromFile.String() != fromStdin.String() {
		t.Errorf("inject -f FILE and inject -f - differ")
	}
	// The command is a shell around inject.Manifests: same bytes.
	var direct bytes.Buffer
	if _, err := inject.Manifests(bytes.NewReader(src), &direct, inject.Options{SendguardImage: "example.com/sendguard:1.2.3", EnvoyImage: "example.com/envoy:v1.40.0", Version: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if direct.String() != fromFile.String() {
		t.Errorf("inject -f differs from inject.Manifests")
	}
	got := withoutEnvoyConfig(fromFile.String())
	if strings.Count(got, "ENVOY_CONFIG") != 2 {
		t.Errorf("want 2 injected Envoy configs (Deployment sender, CronJob), got %d", strings.Count(got, "ENVOY_CONFIG"))
	}
	golden := "testdata/inject/manifests.golden.yaml"
	if *updateInject {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestInjectGolden -update-inject)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("inject -f %s (-%s +got):\n%s", in, golden, d)
	}
}

func TestInjectClassicFlag(t *testing.T) {
	src := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {sendguard.io/inject: \"true\"}\nspec:\n  containers:\n  - {name: app, image: a, ports: [{containerPort: 8080}]}\n"
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"inject", "-f", "-"}, nil, "initContainers:"},
		{[]string{"inject", "-f", "-", "--classic"}, nil, "name: sendguard-envoy"},
		{[]string{"inject", "-f", "-"}, map[string]string{"SENDGUARD_INJECT_CLASSIC": "true"}, "name: sendguard-envoy"},
	} {
		var out, errb bytes.Buffer
		getenv := func(k string) string { return c.env[k] }
		if err := run(context.Background(), c.args, getenv, strings.NewReader(src), &out, &errb); err != nil {
			t.Fatalf("run(%q) = %v", c.args, err)
		}
		classic := !strings.Contains(out.String(), "initContainers:")
		if wantClassic := c.want != "initContainers:"; classic != wantClassic || !strings.Contains(out.String(), c.want) {
			t.Errorf("run(%q, env %v): classic %v, want %v", c.args, c.env, classic, wantClassic)
		}
	}
}

func TestInjectErrors(t *testing.T) {
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"inject"}, "", "needs -f"},
		{[]string{"inject", "-f", "testdata/inject/nope.yaml"}, "", "no such file"},
		{[]string{"inject", "-f", "-", "extra"}, "", "unexpected arguments"},
		{[]string{"inject", "-f", "-"}, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {sendguard.io/inject: \"true\"}}\nspec: {containers: [{name: app, image: a}]}\n", "sendguard.io/port missing"},
		{[]string{"inject", "-f", "-"}, "kind: [", "document 1"},
		{[]string{"inject", "serve"}, "", "--tls-cert and --tls-key"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, noenv, strings.NewReader(c.stdin), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error mentioning %q", c.args, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) printed %q on failure", c.args, out.String())
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, returning
// their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sendguard-injector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// `inject serve` over real TLS: the recorded AdmissionReview gets a
// JSONPatch, an unannotated pod none, and the server stops with its context.
func TestInjectServe(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	addr := "127.0.0.1:" + freePortString(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"inject", "serve", "--addr", addr, "--tls-cert", certFile, "--tls-key", keyFile}, injectFlags...), noenv, nil, &bytes.Buffer{}, &logs)
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("injector not up: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("inject serve ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	review, err := os.ReadFile("../../internal/inject/testdata/admission/pod-create.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		body  []byte
		patch bool
	}{
		{"annotated", review, true},
		{"unannotated", bytes.Replace(review, []byte(`"sendguard.io/inject": "true", `), nil, 1), false},
	} {
		resp, err := client.Post("https://"+addr+"/inject", "application/json", bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Response struct {
				Allowed   bool   `json:"allowed"`
				Patch     []byte `json:"patch"`
				PatchType string `json:"patchType"`
			} `json:"response"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !out.Response.Allowed || (len(out.Response.Patch) > 0) != c.patch {
			t.Errorf("%s: %d allowed %v patch %d bytes (%v), want patch %v", c.name, resp.StatusCode, out.Response.Allowed, len(out.Response.Patch), err, c.patch)
		}
		if c.patch && (out.Response.PatchType != "JSONPatch" || !bytes.Contains(out.Response.Patch, []byte(`"sendguard-http"`))) {
			t.Errorf("%s: patch %.200s, want a JSONPatch adding port sendguard-http", c.name, out.Response.Patch)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("inject serve returned %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("inject serve did not stop")
	}
	if !strings.Contains(logs.String(), "sendguard injected") {
		t.Errorf("no injection logged: %s", logs.String())
	}
}

func freePortString(t *testing.T) string { t.Helper(); return strconv.Itoa(testport.Get(t)) }
