// Package k8stest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver on loopback, started once per test binary, with a static
// admin token, and a plain REST client for it (net/http and the API
// server's JSON; no client-go). There is no scheduler or kubelet: objects
// are stored and admitted (validation, defaulting, admission webhooks,
// RBAC) but no pod ever runs. A test that needs Deployments to turn into
// ReplicaSets and pods calls ControllerManager, which adds
// kube-controller-manager with only the Deployment and ReplicaSet
// controllers; its pods stay Pending.
//
// The binaries come from `make k8s-bin` (.ci/k8s/build), which builds
// kube-apiserver, kube-controller-manager, etcd and helm into the
// git-ignored .cache/k8s/bin; the
// directory can be overridden with K8S_BIN_DIR. Without them a test fails
// under CI (CI=true) and is skipped elsewhere, saying how to build them.
//
// A package using Start must call Main from its TestMain, so that the
// servers are stopped when the tests end.
package k8stest

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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/testport"
)

// Version is the Kubernetes version .ci/k8s/build builds.
const Version = "v1.37.2"

// Token is the static bearer token of the admin user (group
// system:masters).
const Token = "sendguard-k8stest-admin"

// Env is a running API server.
type Env struct {
	// URL is the API server's base URL, https://127.0.0.1:PORT.
	URL string
	// CAFile holds the PEM CA that signed the API server's certificate.
	CAFile string
	// Kubeconfig is a kubeconfig file for the admin user (for helm).
	Kubeconfig string
	// Client trusts the API server's CA; requests made with Do carry
	// the admin token.
	Client   *http.Client
	dir      string
	procs    []*exec.Cmd
	releases []func() // port reservations
}

// The environment is per test binary: starting etcd and the API server
// takes seconds, and every test of a package shares them (each works in
// its own namespace). These are the only package-level state, guarded by
// the once.
var (
	startOnce sync.Once
	shared    *Env
	startErr  error
	kcmOnce   sync.Once
	kcmErr    error
)

// Main runs the tests and then stops the environment if one was started.
// Call it from TestMain: func TestMain(m *testing.M) { k8stest.Main(m) }; cleanups
// run after the tests, before the process exits.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// Binary returns the path of the named binary (kube-apiserver,
// kube-controller-manager, etcd or helm) from K8S_BIN_DIR or the repository's .cache/k8s/bin. Without it,
// the test fails under CI and is skipped elsewhere.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("no %s in %s: CI must build it with `make k8s-bin`", name, BinDir())
	}
	tb.Skipf("no %s in %s: run `make k8s-bin` (builds kube-apiserver, kube-controller-manager, etcd and helm; ~15 min the first time)", name, BinDir())
	return ""
}

// BinDir is where Binary looks: K8S_BIN_DIR, else .cache/k8s/bin at the
// repository's root.
func BinDir() string {
	if d := os.Getenv("K8S_BIN_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0) // internal/k8stest/k8stest.go
	return filepath.Join(filepath.Dir(file), "..", "..", ".cache", "k8s", "bin")
}

// Start returns the package's API server, starting etcd and kube-apiserver
// on the first call. Later calls return the same Env (or fail the same
// way).
func Start(tb testing.TB) *Env {
	tb.Helper()
	etcd, apiserver := Binary(tb, "etcd"), Binary(tb, "kube-apiserver")
	startOnce.Do(func() {
		shared, startErr = start(etcd, apiserver)
	})
	if startErr != nil {
		tb.Fatalf("k8stest: %v", startErr)
	}
	return shared
}

// ControllerManager returns the package's API server (see Start) with
// kube-controller-manager running against it, started on the first call:
// the Deployment and ReplicaSet controllers only, as the admin user, no
// leader election, no serving port. Deployments get ReplicaSets and the
// ReplicaSets create their pods (through admission, so webhooks see them);
// with no scheduler or kubelet the pods stay Pending and never become
// available. Tests that do not call it see no controller at all.
func ControllerManager(tb testing.TB) *Env {
	tb.Helper()
	bin := Binary(tb, "kube-controller-manager")
	e := Start(tb)
	kcmOnce.Do(func() { kcmErr = e.startControllerManager(bin) })
	if kcmErr != nil {
		tb.Fatalf("k8stest: %v", kcmErr)
	}
	return e
}

func (e *Env) startControllerManager(bin string) error {
	return e.run(bin, "kube-controller-manager.log",
		"--kubeconfig="+e.Kubeconfig,
		// Names as of v1.28; garbage collection and every other
		// controller stay off (nothing here deletes an owner).
		"--controllers=deployment-controller,replicaset-controller",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--v=2",
	)
}

// users are the static tokens besides the admin's: token -> user,uid,groups.
// The name of a service account's user is system:serviceaccount:NS:NAME, so
// RBAC bindings to that ServiceAccount apply to a request with its token.
var users = []struct{ token, user, groups string }{
	{Token, "admin", "system:masters"},
	{"sendguard-k8stest-injector", "system:serviceaccount:sendguard-system:sendguard", "system:serviceaccounts,system:serviceaccounts:sendguard-system,system:authenticated"},
	{"sendguard-k8stest-nobody", "nobody", "system:authenticated"},
}

// UserToken returns the static token of one of the extra users:
// "injector" is the ServiceAccount sendguard in namespace
// sendguard-system, "nobody" an authenticated user without any binding.
func UserToken(which string) string {
	switch which {
	case "injector":
		return users[1].token
	case "nobody":
		return users[2].token
	}
	panic("k8stest: unknown user " + which)
}

// StartEnv starts etcd and kube-apiserver from binDir outside a test (see
// k8senv); Stop ends them and removes their files.
func StartEnv(binDir string) (*Env, error) {
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("%w (run make k8s-bin)", err)
		}
	}
	return start(filepath.Join(binDir, "etcd"), filepath.Join(binDir, "kube-apiserver"))
}

// Stop ends the servers StartEnv started and removes their files.
func (e *Env) Stop() { e.stop() }

func start(etcdBin, apiserverBin string) (e *Env, err error) {
	dir, err := os.MkdirTemp("", "k8stest")
	if err != nil {
		return nil, err
	}
	e = &Env{dir: dir}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	ports, err := e.freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := e.run(etcdBin, "etcd.log",
		"--name=k8stest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=k8stest="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=1073741824",
	); err != nil {
		return nil, err
	}

	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.serving([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	var tokens strings.Builder
	for _, u := range users {
		fmt.Fprintf(&tokens, "%s,%s,%s,\"%s\"\n", u.token, u.user, u.user, u.groups)
	}
	e.CAFile = filepath.Join(dir, "ca.crt")
	files := map[string][]byte{
		"ca.crt":     ca.certPEM,
		"tls.crt":    certPEM,
		"tls.key":    keyPEM,
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		"tokens.csv": []byte(tokens.String()),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	e.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := e.run(apiserverBin, "kube-apiserver.log",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+filepath.Join(dir, "tls.crt"),
		"--tls-private-key-file="+filepath.Join(dir, "tls.key"),
		"--client-ca-file="+filepath.Join(dir, "ca.crt"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// Loopback only, no controller-manager: nothing may reconcile the
		// kubernetes Service's endpoints, and no controller creates the
		// default ServiceAccounts the ServiceAccount admission plugin
		// wants.
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.certPEM)
	e.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:           nil,
	}}
	if err := e.writeKubeconfig(); err != nil {
		return nil, err
	}
	if err := e.waitReady(60 * time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

// run starts one server, its output in dir/log.
func (e *Env) run(bin, log string, args ...string) error {
	f, err := os.Create(filepath.Join(e.dir, log))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// No proxy: the API server calls webhooks on 127.0.0.1.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.EqualFold(k, "http_proxy") && !strings.EqualFold(k, "https_proxy") && !strings.EqualFold(k, "no_proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Killed with the test binary if Main never runs (a panic, a timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	f.Close()
	e.procs = append(e.procs, cmd)
	return nil
}

// Log returns the named server's output so far ("etcd",
// "kube-apiserver" or "kube-controller-manager"), for failure messages.
func (e *Env) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name+".log"))
	return string(b)
}

func (e *Env) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		for _, p := range e.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("%s exited", p.Path)
			}
		}
		var body []byte
		status, err := e.Do(context.Background(), http.MethodGet, "/readyz", nil, &body)
		if err == nil && status == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %v %s", status, err, body)
		time.Sleep(100 * time.Millisecond)
	}
	tail := e.Log("kube-apiserver")
	if len(tail) > 4000 {
		tail = tail[len(tail)-4000:]
	}
	return fmt.Errorf("API server not ready after %v (last: %s)\n%s", timeout, last, tail)
}

func (e *Env) stop() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		p := e.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(e.dir)
	for _, release := range e.releases {
		release()
	}
}

func (e *Env) writeKubeconfig() error {
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8stest
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: k8stest
  context: {cluster: k8stest, user: admin}
current-context: k8stest
`, e.URL, e.CAFile, Token)
	return os.WriteFile(e.Kubeconfig, []byte(cfg), 0o600)
}

// Do sends one request as the admin user. body, if not nil, is sent as
// JSON (a []byte is sent as it is). out, if not nil, receives the
// response: a *[]byte gets the raw body, anything else is decoded from
// JSON when the status is 2xx. It returns the HTTP status; err is only
// for transport and decoding failures.
func (e *Env) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	return e.DoAs(ctx, Token, method, path, body, out)
}

// DoAs is Do with another user's token (see UserToken).
func (e *Env) DoAs(ctx context.Context, token, method, path string, body, out any) (int, error) {
	var r io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	ctype := "application/json"
	if body != nil {
		r = bytes.NewReader(raw)
		if method == http.MethodPatch {
			// A JSON patch is an array, a merge patch an object.
			ctype = "application/merge-patch+json"
			if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
				ctype = "application/json-patch+json"
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if r != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = raw
	default:
		if resp.StatusCode/100 == 2 {
			if err := json.Unmarshal(raw, out); err != nil {
				return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
			}
		}
	}
	return resp.StatusCode, nil
}

// Must is Do that fails the test unless the status is want; it returns
// the raw response body.
func (e *Env) Must(tb testing.TB, want int, method, path string, body any) []byte {
	tb.Helper()
	var raw []byte
	status, err := e.Do(context.Background(), method, path, body, &raw)
	if err != nil || status != want {
		tb.Fatalf("%s %s = %d (%v) %s, want %d", method, path, status, err, raw, want)
	}
	return raw
}

// Namespace creates a namespace with the given labels. It stays until the
// environment stops: without a controller-manager a deleted namespace is
// never emptied, so each test uses names of its own.
func (e *Env) Namespace(tb testing.TB, name string, labels map[string]string) {
	tb.Helper()
	ns := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}
	e.Must(tb, http.StatusCreated, http.MethodPost, "/api/v1/namespaces", ns)
}

// Path returns the REST path of a resource collection, or of one object
// when name is not empty: ("v1", "pods", "ns", "") is
// /api/v1/namespaces/ns/pods. An empty namespace is a cluster-scoped
// resource.
func Path(apiVersion, resource, namespace, name string) string {
	p := "/apis/" + apiVersion
	if apiVersion == "v1" {
		p = "/api/v1"
	}
	if namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// CA is a test certificate authority.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA returns a fresh CA valid for a day.
func NewCA() (*CA, error) { return newCA() }

// PEM returns the CA's certificate, PEM-encoded (a caBundle).
func (c *CA) PEM() []byte { return c.certPEM }

// Serving returns a serving certificate and key (PEM) for the names and
// IPs, signed by the CA and valid for a day.
func (c *CA) Serving(dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	return c.serving(dns, ips)
}

func newCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8stest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (c *CA) serving(dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "k8stest"},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// freePorts reserves n distinct loopback ports until e stops
// (testport: outside the ephemeral range, locked against other tests).
func (e *Env) freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		p, release, err := testport.Reserve()
		if err != nil {
			return nil, err
		}
		e.releases = append(e.releases, release)
		ports = append(ports, p)
	}
	return ports, nil
}

// WaitFor polls cond every 50ms until it holds, failing the test after 30s.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	WaitWithin(tb, 30*time.Second, what, cond)
}

// WaitWithin is WaitFor with another deadline, for what takes a
// controller's resync (a controller-manager that has just started).
func WaitWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
