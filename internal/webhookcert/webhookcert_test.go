package webhookcert_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/k8stest"
	"github.com/sendguard/sendguard/internal/webhookcert"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

// setup starts the API server, creates namespace ns and a webhook
// configuration named webhook with two webhooks and no caBundle, and
// returns a client with the admin token.
func setup(t *testing.T, ns, webhook string) (*k8stest.Env, *webhookcert.Client) {
	t.Helper()
	env := k8stest.Start(t)
	env.Namespace(t, ns, nil)
	url := "https://127.0.0.1:1/inject"
	hook := func(name string) map[string]any {
		return map[string]any{
			"name": name, "admissionReviewVersions": []string{"v1"}, "sideEffects": "None",
			"failurePolicy": "Ignore", "clientConfig": map[string]any{"url": url},
			"rules":             []any{map[string]any{"operations": []string{"CREATE"}, "apiGroups": []string{""}, "apiVersions": []string{"v1"}, "resources": []string{"pods"}}},
			"namespaceSelector": map[string]any{"matchLabels": map[string]string{"never": "matches"}},
		}
	}
	mwc := map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
		"metadata": map[string]any{"name": webhook},
		"webhooks": []any{hook("a.sendguard.io"), hook("b.sendguard.io")},
	}
	path := k8stest.Path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", "")
	env.Must(t, http.StatusCreated, http.MethodPost, path, mwc)
	t.Cleanup(func() { env.Do(context.Background(), http.MethodDelete, path+"/"+webhook, nil, nil) })
	return env, client(t, env, k8stest.Token)
}

func client(t *testing.T, env *k8stest.Env, token string) *webhookcert.Client {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := webhookcert.NewClient(env.URL, tokenFile, env.CAFile, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type stored struct {
	data     map[string][]byte
	caBundle [][]byte // per webhook
}

func read(t *testing.T, env *k8stest.Env, ns, secret, webhook string) stored {
	t.Helper()
	var s struct {
		Data map[string][]byte `json:"data"`
	}
	if status, err := env.Do(context.Background(), http.MethodGet, k8stest.Path("v1", "secrets", ns, secret), nil, &s); err != nil || status != http.StatusOK {
		t.Fatalf("get secret: %d %v", status, err)
	}
	var w struct {
		Webhooks []struct {
			ClientConfig struct {
				CABundle []byte `json:"caBundle"`
			} `json:"clientConfig"`
		} `json:"webhooks"`
	}
	if status, err := env.Do(context.Background(), http.MethodGet, k8stest.Path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", webhook), nil, &w); err != nil || status != http.StatusOK {
		t.Fatalf("get webhook: %d %v", status, err)
	}
	out := stored{data: s.Data}
	for _, h := range w.Webhooks {
		out.caBundle = append(out.caBundle, h.ClientConfig.CABundle)
	}
	return out
}

func certs(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// check verifies the stored state: every webhook carries the Secret's
// caBundle, the serving certificate chains to it for every DNS name at
// time now, and the manager serves that certificate.
func check(t *testing.T, st stored, m *webhookcert.Manager, now time.Time) {
	t.Helper()
	for _, k := range []string{webhookcert.KeyCert, webhookcert.KeyKey, webhookcert.KeyCA, webhookcert.KeyCAKey} {
		if len(st.data[k]) == 0 {
			t.Fatalf("secret has no %s", k)
		}
	}
	for i, b := range st.caBundle {
		if !bytes.Equal(b, st.data[webhookcert.KeyCA]) {
			t.Errorf("webhook %d caBundle differs from the Secret's ca.crt", i)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(st.data[webhookcert.KeyCA])
	leaf := certs(t, st.data[webhookcert.KeyCert])[0]
	for _, name := range m.DNSNames {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	served, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served.Certificate[0], leaf.Raw) {
		t.Error("manager serves another certificate than the Secret's")
	}
}

// TestEnsureCreatesReusesAndRotates: the first Ensure generates the CA and
// certificate into the Secret and patches the caBundle of every webhook;
// later ones reuse them; the serving certificate is renewed once a third
// of its life is left (same CA), the CA likewise, with the old CA kept in
// the caBundle while it is valid.
func TestEnsureCreatesReusesAndRotates(t *testing.T) {
	const ns, secret, webhook = "certs", "injector-tls", "certs-injector"
	env, c := setup(t, ns, webhook)
	now := time.Now()
	m := &webhookcert.Manager{Client: c, Namespace: ns, Secret: secret, Webhook: webhook,
		DNSNames: []string{"sg-injector.certs.svc", "sg-injector.certs.svc.cluster.local"}, Now: func() time.Time { return now }}
	ctx := context.Background()
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := read(t, env, ns, secret, webhook)
	check(t, first, m, now)
	if n := len(certs(t, first.data[webhookcert.KeyCA])); n != 1 {
		t.Errorf("caBundle holds %d certificates, want 1", n)
	}

	// Reused: a second manager (another replica) changes nothing.
	m2 := &webhookcert.Manager{Client: c, Namespace: ns, Secret: secret, Webhook: webhook, DNSNames: m.DNSNames}
	if err := m2.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if again := read(t, env, ns, secret, webhook); !bytes.Equal(again.data[webhookcert.KeyCert], first.data[webhookcert.KeyCert]) || !bytes.Equal(again.data[webhookcert.KeyCA], first.data[webhookcert.KeyCA]) {
		t.Error("second Ensure replaced valid certificates")
	}

	// 250 days on, the one-year certificate is due: renewed, same CA.
	now = now.Add(250 * 24 * time.Hour)
	if d := m.NextCheck(time.Hour); d != time.Second {
		t.Errorf("NextCheck 250 days on = %v, want 1s (due)", d)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := read(t, env, ns, secret, webhook)
	check(t, renewed, m, now)
	if bytes.Equal(renewed.data[webhookcert.KeyCert], first.data[webhookcert.KeyCert]) {
		t.Error("serving certificate not renewed 250 days on")
	}
	if !bytes.Equal(renewed.data[webhookcert.KeyCA], first.data[webhookcert.KeyCA]) {
		t.Error("CA replaced with years left")
	}
	if d := m.NextCheck(time.Hour); d != time.Hour {
		t.Errorf("NextCheck after renewal = %v, want the interval", d)
	}

	// Seven years on, the ten-year CA is due: a new CA, the old one
	// still in the caBundle so certificates it signed are still trusted.
	now = now.Add(7 * 365 * 24 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := read(t, env, ns, secret, webhook)
	check(t, rotated, m, now)
	bundle := certs(t, rotated.data[webhookcert.KeyCA])
	oldCA := certs(t, first.data[webhookcert.KeyCA])[0]
	if len(bundle) != 2 || bundle[0].Equal(oldCA) || !bundle[1].Equal(oldCA) {
		t.Errorf("caBundle after CA rotation holds %d certificates (new first, old second wanted)", len(bundle))
	}
}

// TestEnsureReplacesBrokenSecret: a Secret whose certificate does not
// match its key, or whose certificate lacks a DNS name, is replaced.
func TestEnsureReplacesBrokenSecret(t *testing.T) {
	const ns, secret, webhook = "broken", "injector-tls", "broken-injector"
	env, c := setup(t, ns, webhook)
	m := &webhookcert.Manager{Client: c, Namespace: ns, Secret: secret, Webhook: webhook, DNSNames: []string{"a.broken.svc"}}
	ctx := context.Background()
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := read(t, env, ns, secret, webhook)
	// Swap in another key: the pair no longer matches.
	other := &webhookcert.Manager{Client: c, Namespace: ns, Secret: "scratch", Webhook: webhook, DNSNames: []string{"x"}}
	if err := other.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	scratch := read(t, env, ns, "scratch", webhook)
	patch := fmt.Sprintf(`{"data":{"tls.key":%q}}`, base64.StdEncoding.EncodeToString(scratch.data[webhookcert.KeyKey]))
	env.Must(t, http.StatusOK, http.MethodPatch, k8stest.Path("v1", "secrets", ns, secret), []byte(patch))
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	fixed := read(t, env, ns, secret, webhook)
	check(t, fixed, m, time.Now())
	if bytes.Equal(fixed.data[webhookcert.KeyCert], first.data[webhookcert.KeyCert]) {
		t.Error("mismatched pair kept")
	}
	// A new DNS name (the Service was renamed): a new certificate.
	m.DNSNames = append(m.DNSNames, "b.broken.svc")
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	check(t, read(t, env, ns, secret, webhook), m, time.Now())
}

// TestReplicasConverge: replicas starting together on an empty Secret end
// up serving one certificate, the one in the Secret.
func TestReplicasConverge(t *testing.T) {
	const ns, secret, webhook = "replicas", "injector-tls", "replicas-injector"
	env, c := setup(t, ns, webhook)
	ms := make([]*webhookcert.Manager, 6)
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i := range ms {
		ms[i] = &webhookcert.Manager{Client: c, Namespace: ns, Secret: secret, Webhook: webhook, DNSNames: []string{"sg.replicas.svc"}}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = ms[i].Ensure(context.Background()) }()
	}
	wg.Wait()
	st := read(t, env, ns, secret, webhook)
	for i, m := range ms {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
			continue
		}
		check(t, st, m, time.Now())
	}
}

// TestEnsureNeedsRBAC: a user without the chart's bindings gets the API
// server's refusal, not a half-made Secret.
func TestEnsureNeedsRBAC(t *testing.T) {
	const ns, secret, webhook = "norbac", "injector-tls", "norbac-injector"
	env, _ := setup(t, ns, webhook)
	m := &webhookcert.Manager{Client: client(t, env, k8stest.UserToken("nobody")), Namespace: ns, Secret: secret, Webhook: webhook, DNSNames: []string{"x"}}
	err := m.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Ensure as nobody = %v, want a 403", err)
	}
	if status, _ := env.Do(context.Background(), http.MethodGet, k8stest.Path("v1", "secrets", ns, secret), nil, nil); status != http.StatusNotFound {
		t.Errorf("secret after a refused Ensure: %d, want 404", status)
	}
}
