// Package webhookcert gives the injector its own TLS when cert-manager is
// not used: a CA and a serving certificate kept in a Secret, and the CA in
// the caBundle of the injector's MutatingWebhookConfiguration. Every
// replica of the injector runs the same Manager: the first one to find no
// valid Secret creates it, the others read it (a conflict on create or
// update means another replica won, and its Secret is used).
//
// The CA lives ten years, the serving certificate one; each is replaced
// when less than a third of its life is left. While a replaced CA is still
// valid, the caBundle holds both the new and the old CA, so replicas still
// serving the old certificate keep being trusted until they pick up the
// new one.
//
// It talks to the API server with plain REST (net/http and JSON).
package webhookcert

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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Keys of the Secret's data.
const (
	KeyCert   = "tls.crt"
	KeyKey    = "tls.key"
	KeyCA     = "ca.crt" // the caBundle: the current CA, then a replaced one still valid
	KeyCAKey  = "ca.key"
	caLife    = 10 * 365 * 24 * time.Hour
	certLife  = 365 * 24 * time.Hour
	renewPart = 3 // renew when less than 1/renewPart of the life is left
)

// Client is a minimal API server client: a base URL, a bearer token read
// from a file on every request (projected service account tokens rotate)
// and the CA to trust.
type Client struct {
	URL       string
	TokenFile string
	HTTP      *http.Client
}

// InClusterPaths are where the kubelet mounts a pod's service account.
const (
	InClusterToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	InClusterCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// NewClient returns a Client for the API server at apiURL (empty: the
// in-cluster address from KUBERNETES_SERVICE_HOST and _PORT), the token
// in tokenFile and the CA in caFile.
func NewClient(apiURL, tokenFile, caFile string, getenv func(string) string) (*Client, error) {
	if apiURL == "" {
		host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("not in a cluster (no KUBERNETES_SERVICE_HOST): give the API server's URL")
		}
		apiURL = "https://" + net.JoinHostPort(host, port)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("API server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("API server CA %s: no PEM certificate", caFile)
	}
	if _, err := os.ReadFile(tokenFile); err != nil {
		return nil, fmt.Errorf("API server token: %w", err)
	}
	return &Client{URL: strings.TrimSuffix(apiURL, "/"), TokenFile: tokenFile, HTTP: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}}, nil
}

// statusError is an API server answer other than 2xx.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	b := e.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("API server answered %d: %s", e.code, b)
}

func isStatus(err error, code int) bool {
	var s *statusError
	return errors.As(err, &s) && s.code == code
}

// Get reads the JSON object at path (an API path such as
// /apis/apps/v1/namespaces/NS/deployments/NAME) into out. For an object
// that does not exist, IsNotFound(err) is true.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// IsNotFound reports whether err is the API server's 404.
func IsNotFound(err error) bool { return isStatus(err, http.StatusNotFound) }

// do sends one request; out, if not nil, receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	token, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, body: string(raw)}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// Manager keeps the injector's CA and serving certificate.
type Manager struct {
	Client *Client
	// Namespace and Secret name the Secret holding the certificates.
	Namespace, Secret string
	// Webhook names the MutatingWebhookConfiguration whose webhooks get
	// the caBundle (every webhook in it).
	Webhook string
	// DNSNames go into the serving certificate (the Service's names).
	DNSNames []string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	Log *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	leaf    *x509.Certificate
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// GetCertificate serves the certificate of the last Ensure (for
// tls.Config.GetCertificate).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return m.current, nil
}

// secret is the part of a core/v1 Secret this package reads and writes.
type secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   secretMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data"`
}

type secretMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
}

// Ensure makes the Secret hold a valid CA and serving certificate
// (creating or renewing them when needed), makes every webhook of the
// configuration carry the Secret's caBundle, and serves the certificate
// from then on. It is safe to run from many replicas at once.
func (m *Manager) Ensure(ctx context.Context) error {
	var s *secret
	var err error
	for attempt := 0; ; attempt++ {
		s, err = m.ensureSecret(ctx)
		if err == nil {
			break
		}
		// Another replica created or updated the Secret first: use theirs.
		if attempt < 5 && isStatus(err, http.StatusConflict) {
			continue
		}
		return err
	}
	cert, err := tls.X509KeyPair(s.Data[KeyCert], s.Data[KeyKey])
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", m.Namespace, m.Secret, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err = m.patchCABundle(ctx, s.Data[KeyCA])
		if err == nil || attempt >= 5 || !(isStatus(err, http.StatusConflict) || isStatus(err, http.StatusUnprocessableEntity)) {
			break
		}
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	changed := m.leaf == nil || !m.leaf.Equal(leaf)
	m.current, m.leaf = &cert, leaf
	m.mu.Unlock()
	if changed && m.Log != nil {
		m.Log.Info("webhook serving certificate", "secret", m.Namespace+"/"+m.Secret, "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// NextCheck is when the certificate should be checked again: when it
// enters its renewal window, and at least every interval.
func (m *Manager) NextCheck(interval time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaf == nil {
		return interval
	}
	d := renewAt(m.leaf).Sub(m.now())
	if d < time.Second {
		d = time.Second
	}
	return min(d, interval)
}

// Run calls Ensure every interval (sooner when the certificate is due for
// renewal) until ctx ends, logging failures; the last good certificate
// keeps being served meanwhile.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	for {
		t := time.NewTimer(m.NextCheck(interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := m.Ensure(ctx); err != nil && ctx.Err() == nil && m.Log != nil {
			m.Log.Warn("webhook certificate check failed", "error", err)
		}
	}
}

func renewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Add(-life / renewPart)
}

func (m *Manager) secretPath(name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(m.Namespace) + "/secrets"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// ensureSecret returns the Secret after making it valid.
func (m *Manager) ensureSecret(ctx context.Context) (*secret, error) {
	var s secret
	err := m.Client.do(ctx, http.MethodGet, m.secretPath(m.Secret), "", nil, &s)
	switch {
	case isStatus(err, http.StatusNotFound):
		s = secret{APIVersion: "v1", Kind: "Secret", Type: "kubernetes.io/tls",
			Metadata: secretMeta{Name: m.Secret, Namespace: m.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "sendguard-injector"}},
			Data:     map[string][]byte{}}
		if _, err := m.renew(&s); err != nil {
			return nil, err
		}
		body, err := json.Marshal(&s)
		if err != nil {
			return nil, err
		}
		var created secret
		if err := m.Client.do(ctx, http.MethodPost, m.secretPath(""), "application/json", body, &created); err != nil {
			return nil, err
		}
		m.logRenewal("created", &created)
		return &created, nil
	case err != nil:
		return nil, fmt.Errorf("get secret %s/%s: %w", m.Namespace, m.Secret, err)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	if changed, err := m.renew(&s); err != nil || !changed {
		return &s, err
	}
	body, err := json.Marshal(&s) // carries resourceVersion: a concurrent update is a conflict
	if err != nil {
		return nil, err
	}
	var updated secret
	if err := m.Client.do(ctx, http.MethodPut, m.secretPath(m.Secret), "application/json", body, &updated); err != nil {
		return nil, err
	}
	m.logRenewal("renewed", &updated)
	return &updated, nil
}

func (m *Manager) logRenewal(what string, s *secret) {
	if m.Log != nil {
		m.Log.Info("webhook certificates "+what, "secret", m.Namespace+"/"+m.Secret)
	}
}

// renew replaces what in s.Data is missing, invalid or due, and reports
// whether it changed anything.
func (m *Manager) renew(s *secret) (bool, error) {
	now := m.now()
	ca, caKey := parseCA(s.Data[KeyCA], s.Data[KeyCAKey])
	var oldCAs [][]byte
	if ca == nil || !now.Before(renewAt(ca)) {
		if ca != nil && now.Before(ca.NotAfter) {
			oldCAs = append(oldCAs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
		}
		var err error
		if ca, caKey, err = newCA(now); err != nil {
			return false, err
		}
		s.Data[KeyCAKey] = encodeKey(caKey)
		s.Data[KeyCA] = bytes.Join(append([][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})}, oldCAs...), nil)
		delete(s.Data, KeyCert) // signed by the old CA
	}
	if m.certValid(s.Data[KeyCert], s.Data[KeyKey], ca, now) {
		return false, nil
	}
	certPEM, keyPEM, err := m.newServing(ca, caKey, now)
	if err != nil {
		return false, err
	}
	s.Data[KeyCert], s.Data[KeyKey] = certPEM, keyPEM
	return true, nil
}

// parseCA returns the first certificate of the bundle and its key, or
// nils when either is missing or they do not belong together.
func parseCA(bundle, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey) {
	b, _ := pem.Decode(bundle)
	k, _ := pem.Decode(keyPEM)
	if b == nil || k == nil {
		return nil, nil
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !cert.IsCA {
		return nil, nil
	}
	key, err := x509.ParseECPrivateKey(k.Bytes)
	if err != nil {
		return nil, nil
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil
	}
	return cert, key
}

// certValid reports whether certPEM/keyPEM is a pair signed by ca, for
// every DNS name, and not yet due for renewal.
func (m *Manager) certValid(certPEM, keyPEM []byte, ca *x509.Certificate, now time.Time) bool {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !now.Before(renewAt(leaf)) || now.Before(leaf.NotBefore) {
		return false
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return false
	}
	for _, n := range m.DNSNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sendguard-injector-ca"},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(caLife),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func (m *Manager) newServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cn := "sendguard-injector"
	if len(m.DNSNames) > 0 {
		cn = m.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     m.DNSNames,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(certLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), encodeKey(key), nil
}

func encodeKey(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// patchCABundle sets caBundle on every webhook of the configuration that
// does not carry it yet, guarded by the configuration's resourceVersion.
func (m *Manager) patchCABundle(ctx context.Context, bundle []byte) error {
	path := "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + url.PathEscape(m.Webhook)
	var cfg struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Webhooks []struct {
			ClientConfig struct {
				CABundle []byte `json:"caBundle"`
			} `json:"clientConfig"`
		} `json:"webhooks"`
	}
	if err := m.Client.do(ctx, http.MethodGet, path, "", nil, &cfg); err != nil {
		return fmt.Errorf("get mutatingwebhookconfiguration %s: %w", m.Webhook, err)
	}
	ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": cfg.Metadata.ResourceVersion}}
	for i, w := range cfg.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, bundle) {
			ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": bundle})
		}
	}
	if len(ops) == 1 {
		return nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	if err := m.Client.do(ctx, http.MethodPatch, path, "application/json-patch+json", body, nil); err != nil {
		return fmt.Errorf("patch caBundle of %s: %w", m.Webhook, err)
	}
	if m.Log != nil {
		m.Log.Info("webhook caBundle patched", "mutatingwebhookconfiguration", m.Webhook, "webhooks", len(ops)-1)
	}
	return nil
}
