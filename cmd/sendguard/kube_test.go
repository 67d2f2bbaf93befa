package main

// Tests of `sendguard inject` against a real Kubernetes API server
// (internal/k8stest: etcd and kube-apiserver on loopback): the API server
// calls `inject serve` as a mutating admission webhook registered exactly
// as the chart renders it, but with clientConfig.url on 127.0.0.1.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/k8stest"
)

func TestMain(m *testing.M) {
	k8stest.Main(m, func() {
		if binPath != "" {
			os.RemoveAll(filepath.Dir(binPath))
		}
	})
}

// injectorNamespace is the release namespace the chart is rendered for in
// the injection tests (TestSelfSignedInjector uses sendguard-system, whose
// ServiceAccount k8stest has a token for).
const injectorNamespace = "sg-rt-system"

// injector is one `sendguard inject serve` run in this process.
type injector struct {
	url    string // https://127.0.0.1:PORT/inject
	ca     []byte // PEM, the caBundle
	logs   *syncWriter
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startInjector runs `inject serve` on loopback TLS with a certificate
// from a fresh CA, and waits until it answers.
func startInjector(t *testing.T, extra ...string) *injector {
	t.Helper()
	ca, err := k8stest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Serving(nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePortString(t)
	ctx, cancel := context.WithCancel(context.Background())
	in := &injector{url: "https://" + addr + "/inject", ca: ca.PEM(), logs: &syncWriter{w: &bytes.Buffer{}}, cancel: cancel, done: make(chan error, 1)}
	args := append([]string{"inject", "serve", "--addr", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--namespace", injectorNamespace}, injectFlags...)
	go func() { in.done <- run(ctx, append(args, extra...), noenv, nil, io.Discard, in.logs) }()
	t.Cleanup(in.stop)
	waitInjector(t, addr, ca.PEM(), in.done)
	return in
}

// stop ends the injector and waits for it (once; later calls return).
func (in *injector) stop() {
	in.once.Do(func() {
		in.cancel()
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
		}
	})
}

func waitInjector(t *testing.T, addr string, caPEM []byte, done chan error) {
	t.Helper()
	client := tlsClient(caPEM)
	k8stest.WaitFor(t, "inject serve on "+addr, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("inject serve ended: %v", err)
		default:
		}
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// chartWebhook renders the chart's MutatingWebhookConfiguration (its
// rules, selectors and policies) with helm, for the values in set.
func chartWebhook(t *testing.T, set ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	out := helmTemplate(t, "sg", injectorNamespace, append([]string{"--show-only=templates/injector-webhook.yaml"}, set...)...)
	for _, doc := range strings.Split(out, "\n---") {
		if !strings.Contains(doc, "kind: MutatingWebhookConfiguration") {
			continue
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := yaml.UnmarshalStrict([]byte(doc), &mwc); err != nil {
			t.Fatalf("chart's MutatingWebhookConfiguration: %v", err)
		}
		return &mwc
	}
	t.Fatalf("helm rendered no MutatingWebhookConfiguration:\n%s", out)
	return nil
}

// helmTemplate renders the chart for release namespace ns; set are
// --set values, or helm flags when they start with --.
func helmTemplate(t *testing.T, release, ns string, set ...string) string {
	t.Helper()
	args := []string{"template", release, "../../charts/sendguard", "--namespace", ns}
	for _, s := range set {
		if strings.HasPrefix(s, "--") {
			args = append(args, s)
		} else {
			args = append(args, "--set", s)
		}
	}
	cmd := exec.Command(k8stest.Binary(t, "helm"), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// register creates the chart's webhook configuration (the pod webhook and
// the per-pod limits one), named name, calling in (by URL, since the API
// server runs no Service), with the given failurePolicy, and waits until
// the API server calls it on the pods of namespace probeNS. It is deleted
// when the test ends. set are more chart values.
func register(t *testing.T, env *k8stest.Env, name string, in *injector, policy string, probeNS string, set ...string) {
	t.Helper()
	registerProbe(t, env, name, in, policy, probeNS, annotatedPod("probe"), set...)
}

// registerProbe is register, waiting until probe (which must match the
// configuration's selectors) comes back injected.
func registerProbe(t *testing.T, env *k8stest.Env, name string, in *injector, policy string, probeNS string, probe *corev1.Pod, set ...string) {
	t.Helper()
	mwc := chartWebhook(t, append([]string{"injector.failurePolicy=" + policy}, set...)...)
	mwc.Name = name
	if len(mwc.Webhooks) != 2 {
		t.Fatalf("chart renders %d webhooks, want 2 (pods, workloads)", len(mwc.Webhooks))
	}
	for i := range mwc.Webhooks {
		url := in.url
		mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: in.ca}
	}
	path := k8stest.Path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", "")
	env.Must(t, http.StatusCreated, http.MethodPost, path, mwc)
	t.Cleanup(func() {
		env.Do(context.Background(), http.MethodDelete, path+"/"+name, nil, nil)
	})
	// The API server picks the configuration up from its watch a moment
	// later: wait until a dry-run annotated pod comes back injected.
	k8stest.WaitFor(t, "webhook "+name+" in effect", func() bool {
		pod, status, _ := createPod(t, env, probeNS, probe, true)
		return status == http.StatusCreated && count(pod, inject.SendguardContainer) == 1
	})
}

// annotatedPod is a sender that asks for sendguard.
func annotatedPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metaPod,
		ObjectMeta: objectMeta(name, map[string]string{inject.AnnotationInject: "true"}),
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example.com/sender:1.0",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

var metaPod = typeMeta("v1", "Pod")

// createPod creates pod in ns (dryRun: validated and admitted, not
// stored) and returns what the API server answered.
func createPod(t *testing.T, env *k8stest.Env, ns string, pod *corev1.Pod, dryRun bool) (*corev1.Pod, int, string) {
	t.Helper()
	path := k8stest.Path("v1", "pods", ns, "")
	if dryRun {
		path += "?dryRun=All"
	}
	var raw []byte
	status, err := env.Do(context.Background(), http.MethodPost, path, pod, &raw)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	var out corev1.Pod
	if status == http.StatusCreated {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode pod: %v", err)
		}
	}
	return &out, status, string(raw)
}

// count returns how many of the pod's containers and init containers are
// named name.
func count(pod *corev1.Pod, name string) int {
	n := 0
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				n++
			}
		}
	}
	return n
}

// checkInjected checks what the sidecars need: both exactly once, as
// native sidecars before nothing else, Envoy's sendguard-http port, the
// config and state volumes, the status annotation.
func checkInjected(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if n, m := count(pod, inject.SendguardContainer), count(pod, inject.EnvoyContainer); n != 1 || m != 1 {
		t.Fatalf("pod %s has %d sendguard and %d sendguard-envoy containers, want 1 and 1", pod.Name, n, m)
	}
	if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[0].Name != inject.SendguardContainer || pod.Spec.InitContainers[1].Name != inject.EnvoyContainer {
		t.Errorf("pod %s init containers %v, want [sendguard sendguard-envoy]", pod.Name, names(pod.Spec.InitContainers))
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("pod %s: %s is not a native sidecar (restartPolicy %v)", pod.Name, c.Name, c.RestartPolicy)
		}
	}
	envoyPorts := pod.Spec.InitContainers[1].Ports
	if len(envoyPorts) != 1 || envoyPorts[0].Name != "sendguard-http" || envoyPorts[0].ContainerPort != 10000 {
		t.Errorf("pod %s: Envoy ports %+v, want sendguard-http 10000", pod.Name, envoyPorts)
	}
	admin := pod.Spec.InitContainers[0].Ports
	if len(admin) != 1 || admin[0].Name != "sendguard-admin" || admin[0].ContainerPort != 9192 {
		t.Errorf("pod %s: sendguard ports %+v, want sendguard-admin 9192", pod.Name, admin)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		if _, dup := vols[v.Name]; dup {
			t.Errorf("pod %s: volume %s twice", pod.Name, v.Name)
		}
		vols[v.Name] = v
	}
	if v := vols["sendguard-config"]; v.ConfigMap == nil || v.ConfigMap.Name != "sendguard" {
		t.Errorf("pod %s: volume sendguard-config %+v, want ConfigMap sendguard", pod.Name, v)
	}
	if v := vols["sendguard-state"]; v.EmptyDir == nil {
		t.Errorf("pod %s: volume sendguard-state %+v, want an emptyDir", pod.Name, v)
	}
	if got := pod.Annotations[inject.AnnotationStatus]; got != "1.2.3" {
		t.Errorf("pod %s: %s = %q, want 1.2.3", pod.Name, inject.AnnotationStatus, got)
	}
	if c := pod.Spec.Containers; len(c) != 1 || c[0].Name != "app" {
		t.Errorf("pod %s containers %v, want [app] untouched", pod.Name, names(c))
	}
}

func names(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

// TestInjectionThroughAPIServer: the API server calls `inject serve` on
// every pod created in a namespace labelled for injection, with the
// chart's rules and selectors, and stores the injected pod.
func TestInjectionThroughAPIServer(t *testing.T) {
	env := k8stest.Start(t)
	in := startInjector(t)
	const ns, plain = "rt-messaging", "rt-plain"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})
	env.Namespace(t, plain, nil)
	env.Namespace(t, injectorNamespace, map[string]string{"sendguard.io/injection": "enabled"})
	register(t, env, "rt-sendguard", in, "Fail", ns)

	t.Run("annotated pod is injected once", func(t *testing.T) {
		pod, status, raw := createPod(t, env, ns, annotatedPod("sender"), false)
		if status != http.StatusCreated {
			t.Fatalf("create annotated pod: %d %s", status, raw)
		}
		checkInjected(t, pod)
		// What is stored is what was answered.
		var stored corev1.Pod
		if status, err := env.Do(context.Background(), http.MethodGet, k8stest.Path("v1", "pods", ns, "sender"), nil, &stored); err != nil || status != http.StatusOK {
			t.Fatalf("get pod: %d %v", status, err)
		}
		checkInjected(t, &stored)

		// An update (the webhook's rules are CREATE only) changes nothing.
		patch := []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)
		var updated corev1.Pod
		if status, err := env.Do(context.Background(), http.MethodPatch, k8stest.Path("v1", "pods", ns, "sender"), patch, &updated); err != nil || status != http.StatusOK {
			t.Fatalf("patch pod: %d %v", status, err)
		}
		checkInjected(t, &updated)

		// Re-creating the injected pod (what a controller does with an
		// injected template) does not inject it twice.
		again := stored.DeepCopy()
		again.ObjectMeta = objectMeta("sender-again", stored.Annotations)
		pod, status, raw = createPod(t, env, ns, again, false)
		if status != http.StatusCreated {
			t.Fatalf("re-create injected pod: %d %s", status, raw)
		}
		checkInjected(t, pod)
	})

	t.Run("unannotated pod is untouched", func(t *testing.T) {
		p := annotatedPod("plain-sender")
		p.Annotations = nil
		pod, status, raw := createPod(t, env, ns, p, false)
		if status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, raw)
		}
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 || len(pod.Spec.Volumes) != 0 || pod.Annotations[inject.AnnotationStatus] != "" {
			t.Errorf("unannotated pod came back with init %v, containers %v, volumes %d, annotations %v; want it untouched",
				names(pod.Spec.InitContainers), names(pod.Spec.Containers), len(pod.Spec.Volumes), pod.Annotations)
		}
	})

	t.Run("namespaces outside the selector are not injected", func(t *testing.T) {
		// plain has no sendguard.io/injection label; the injector's own
		// namespace is excluded even with it.
		for _, n := range []string{plain, injectorNamespace} {
			pod, status, raw := createPod(t, env, n, annotatedPod("sender"), true)
			if status != http.StatusCreated {
				t.Fatalf("create in %s: %d %s", n, status, raw)
			}
			if len(pod.Spec.InitContainers) != 0 {
				t.Errorf("annotated pod in %s injected: %v", n, names(pod.Spec.InitContainers))
			}
		}
	})

	t.Run("a pod that cannot be injected is refused", func(t *testing.T) {
		p := annotatedPod("no-port")
		p.Spec.Containers[0].Ports = nil
		_, status, raw := createPod(t, env, ns, p, true)
		if status != http.StatusBadRequest || !strings.Contains(raw, "sendguard injection:") {
			t.Errorf("annotated pod without a port: %d %s, want 400 with the injector's reason", status, raw)
		}
		p = annotatedPod("typo")
		p.Annotations[inject.AnnotationInject] = "yes"
		if _, status, raw = createPod(t, env, ns, p, true); status != http.StatusBadRequest || !strings.Contains(raw, "sendguard injection:") {
			t.Errorf("sendguard.io/inject: yes: %d %s, want 400", status, raw)
		}
	})

	t.Run("a Deployment's template is not mutated", func(t *testing.T) {
		// The webhook mutates pods only: the ReplicaSet controller's pods
		// are injected when they are created, the template stays as
		// written (so a rollout restart gets the injector's current
		// sidecars). Two replicas on the embedded store: the template
		// accepts per-pod limits.
		p := annotatedPod("")
		p.Annotations[inject.AnnotationPerPodLimits] = inject.PerPodAccept
		replicas := int32(2)
		d := appsv1.Deployment{
			TypeMeta:   typeMeta("apps/v1", "Deployment"),
			ObjectMeta: objectMeta("sender", nil),
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sender"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: objectMeta("", p.Annotations), Spec: p.Spec},
			},
		}
		d.Spec.Template.Labels = map[string]string{"app": "sender"}
		var got appsv1.Deployment
		if status, err := env.Do(context.Background(), http.MethodPost, k8stest.Path("apps/v1", "deployments", ns, ""), d, &got); err != nil || status != http.StatusCreated {
			t.Fatalf("create Deployment: %d %v", status, err)
		}
		if n := len(got.Spec.Template.Spec.InitContainers); n != 0 {
			t.Errorf("Deployment template has %d init containers, want 0", n)
		}
		// The pod the ReplicaSet controller would create from it.
		pod := &corev1.Pod{TypeMeta: metaPod, ObjectMeta: got.Spec.Template.ObjectMeta, Spec: got.Spec.Template.Spec}
		pod.GenerateName = "sender-7d9f8-"
		created, status, raw := createPod(t, env, ns, pod, true)
		if status != http.StatusCreated {
			t.Fatalf("create pod from template: %d %s", status, raw)
		}
		checkInjected(t, created)
	})

	t.Run("many pods at once", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := annotatedPod(fmt.Sprintf("burst-%d", i))
				// Multilingual annotations travel through untouched.
				p.Annotations["example.com/note"] = []string{"إرسال", "संदेश", "gönderim", "📨", "é"}[i%5]
				pod, status, raw := createPod(t, env, ns, p, i%2 == 0)
				if status != http.StatusCreated {
					t.Errorf("create %s: %d %s", p.Name, status, raw)
					return
				}
				checkInjected(t, pod)
				if got := pod.Annotations["example.com/note"]; got != p.Annotations["example.com/note"] {
					t.Errorf("%s: note = %q, want %q", p.Name, got, p.Annotations["example.com/note"])
				}
			}()
		}
		wg.Wait()
	})

	if !strings.Contains(in.logs.String(), "sendguard injected") {
		t.Errorf("injector logged no injection:\n%s", in.logs.String())
	}
}

// TestWebhookMatchesManualInjection: a pod injected by the webhook equals
// the same pod injected by `sendguard inject -f`, both as the API server
// stores them (after its defaulting).
func TestWebhookMatchesManualInjection(t *testing.T) {
	env := k8stest.Start(t)
	in := startInjector(t)
	const ns = "same-messaging"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})
	register(t, env, "same-sendguard", in, "Fail", ns)

	for _, fixture := range []string{"pod", "custom-port", "inbound-default-key", "policies-inbound"} {
		t.Run(fixture, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("../../internal/inject/testdata", fixture+".in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.Pod
			if err := yaml.UnmarshalStrict(src, &pod); err != nil {
				t.Fatal(err)
			}
			if pod.Kind != "Pod" {
				t.Fatalf("fixture %s is a %s, want a Pod", fixture, pod.Kind)
			}
			pod.Namespace = ns
			byWebhook, status, raw := createPod(t, env, ns, &pod, true)
			if status != http.StatusCreated {
				t.Fatalf("webhook: %d %s", status, raw)
			}
			// inject -f on the same pod; the webhook then leaves it alone
			// (it carries sendguard.io/status), so the API server only
			// defaults it.
			podYAML, err := yaml.Marshal(&pod)
			if err != nil {
				t.Fatal(err)
			}
			var out, stderr bytes.Buffer
			if err := run(context.Background(), append([]string{"inject", "-f", "-"}, injectFlags...), noenv, bytes.NewReader(podYAML), &out, &stderr); err != nil {
				t.Fatalf("inject -f: %v\n%s", err, stderr.String())
			}
			var manual corev1.Pod
			if err := yaml.UnmarshalStrict(out.Bytes(), &manual); err != nil {
				t.Fatalf("inject -f output: %v", err)
			}
			byHand, status, raw := createPod(t, env, ns, &manual, true)
			if status != http.StatusCreated {
				t.Fatalf("manual: %d %s", status, raw)
			}
			if d := cmp.Diff(byHand.Spec, byWebhook.Spec); d != "" {
				t.Errorf("pod spec: inject -f (-) and the webhook (+) differ:\n%s", d)
			}
			if d := cmp.Diff(byHand.Annotations, byWebhook.Annotations); d != "" {
				t.Errorf("annotations: inject -f (-) and the webhook (+) differ:\n%s", d)
			}
			if count(byWebhook, inject.SendguardContainer) != 1 || count(byHand, inject.SendguardContainer) != 1 {
				t.Errorf("sendguard containers: webhook %d, manual %d, want 1 and 1", count(byWebhook, inject.SendguardContainer), count(byHand, inject.SendguardContainer))
			}
		})
	}
}

// TestWebhookOutageFollowsFailurePolicy: with the injector down, Fail
// refuses pod creation in the selected namespaces (annotated or not: the
// chart's default objectSelector sends every pod there to the webhook) and
// Ignore admits pods unmodified.
func TestWebhookOutageFollowsFailurePolicy(t *testing.T) {
	env := k8stest.Start(t)
	for _, policy := range []string{"Fail", "Ignore"} {
		t.Run(policy, func(t *testing.T) {
			in := startInjector(t)
			ns := "outage-" + strings.ToLower(policy)
			env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})
			register(t, env, "outage-"+strings.ToLower(policy), in, policy, ns)
			in.stop()
			for _, annotated := range []bool{true, false} {
				p := annotatedPod("sender")
				if !annotated {
					p.Annotations = nil
				}
				pod, status, raw := createPod(t, env, ns, p, false)
				switch policy {
				case "Fail":
					if status != http.StatusInternalServerError || !strings.Contains(raw, "failed calling webhook") {
						t.Errorf("annotated=%v with the injector down: %d %s, want 500 failed calling webhook", annotated, status, raw)
					}
				case "Ignore":
					if status != http.StatusCreated {
						t.Fatalf("annotated=%v with the injector down: %d %s, want it admitted", annotated, status, raw)
					}
					if len(pod.Spec.InitContainers) != 0 || pod.Annotations[inject.AnnotationStatus] != "" {
						t.Errorf("admitted pod was modified: init %v annotations %v", names(pod.Spec.InitContainers), pod.Annotations)
					}
					env.Must(t, http.StatusOK, http.MethodDelete, k8stest.Path("v1", "pods", ns, "sender"), nil)
				}
			}
		})
	}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func objectMeta(name string, annotations map[string]string) metav1.ObjectMeta {
	a := map[string]string{}
	for k, v := range annotations {
		a[k] = v
	}
	return metav1.ObjectMeta{Name: name, Annotations: a}
}

// tlsClient trusts only the CA in caPEM.
func tlsClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestSelfSignedInjector: without cert-manager, the chart runs `inject
// serve --self-signed-secret`. With the chart's own ServiceAccount, RBAC
// and webhook configuration applied to the API server, and the chart's
// injector arguments, the injector (authenticated as that ServiceAccount)
// creates its CA and serving certificate in the Secret, patches the
// caBundle, and the API server's webhook calls then succeed over that TLS;
// a restart reuses the Secret; a user without the chart's RBAC cannot
// start it.
func TestSelfSignedInjector(t *testing.T) {
	env := k8stest.Start(t)
	const release, ns = "sendguard-system", "self-messaging"
	env.Namespace(t, release, nil)
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})

	// The chart with its defaults (self-signed TLS), installed as the
	// README says: release sendguard in namespace sendguard-system.
	var chartArgs []string
	var webhookName string
	port := freePortString(t)
	for _, doc := range strings.Split(helmTemplate(t, "sendguard", release), "\n---") {
		var meta struct {
			APIVersion, Kind string
			Metadata         struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || meta.Kind == "" {
			continue
		}
		var obj any
		switch meta.Kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatal(err)
			}
			obj = m
		case "MutatingWebhookConfiguration":
			var mwc admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &mwc); err != nil {
				t.Fatal(err)
			}
			for i, w := range mwc.Webhooks {
				if len(w.ClientConfig.CABundle) != 0 {
					t.Errorf("chart renders a caBundle for webhook %s; the injector owns it", w.Name)
				}
				// No Service routing here: the URL of the injector below.
				u := "https://localhost:" + port + "/inject"
				mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &u}
			}
			webhookName = mwc.Name
			obj = &mwc
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
				t.Fatal(err)
			}
			chartArgs = d.Spec.Template.Spec.Containers[0].Args
			if d.Spec.Template.Spec.AutomountServiceAccountToken == nil || !*d.Spec.Template.Spec.AutomountServiceAccountToken {
				t.Error("injector Deployment does not mount its service account token; it needs it for the Secret and the caBundle")
			}
			continue
		default:
			continue
		}
		k := map[string][2]string{
			"ServiceAccount": {"v1", "serviceaccounts"}, "Role": {"rbac.authorization.k8s.io/v1", "roles"},
			"RoleBinding": {"rbac.authorization.k8s.io/v1", "rolebindings"}, "ClusterRole": {"rbac.authorization.k8s.io/v1", "clusterroles"},
			"ClusterRoleBinding":           {"rbac.authorization.k8s.io/v1", "clusterrolebindings"},
			"MutatingWebhookConfiguration": {"admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations"},
		}[meta.Kind]
		path := k8stest.Path(k[0], k[1], meta.Metadata.Namespace, "")
		env.Must(t, http.StatusCreated, http.MethodPost, path, obj)
		t.Cleanup(func() { env.Do(context.Background(), http.MethodDelete, path+"/"+meta.Metadata.Name, nil, nil) })
	}
	if len(chartArgs) < 2 || chartArgs[0] != "inject" || chartArgs[1] != "serve" || webhookName == "" {
		t.Fatalf("chart's injector args %v, webhook %q", chartArgs, webhookName)
	}
	var secretNS, secretName string
	args := []string{"inject", "serve"}
	for _, a := range chartArgs[2:] {
		switch {
		case strings.HasPrefix(a, "--addr="):
			a = "--addr=127.0.0.1:" + port
		case strings.HasPrefix(a, "--dns-names="):
			a = "--dns-names=localhost," + strings.TrimPrefix(a, "--dns-names=")
		case strings.HasPrefix(a, "--self-signed-secret="):
			secretNS, secretName, _ = strings.Cut(strings.TrimPrefix(a, "--self-signed-secret="), "/")
		case strings.HasPrefix(a, "--tls-"):
			t.Fatalf("chart's default injector args carry %s; want --self-signed-secret", a)
		}
		args = append(args, a)
	}
	if secretNS != release || secretName == "" {
		t.Fatalf("chart's --self-signed-secret is %s/%s, want one in %s", secretNS, secretName, release)
	}
	tokenFile := func(token string) string {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	kubeArgs := func(token string) []string {
		return []string{"--kube-api", env.URL, "--kube-ca-file", env.CAFile, "--kube-token-file", tokenFile(token)}
	}

	// Without the chart's bindings: refused at start, nothing created.
	var out, stderr bytes.Buffer
	err := run(context.Background(), append(append([]string{}, args...), kubeArgs(k8stest.UserToken("nobody"))...), noenv, nil, &out, &stderr)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("inject serve as a user without RBAC = %v, want a 403", err)
	}

	secretPath := k8stest.Path("v1", "secrets", release, secretName)
	// RBAC takes effect a moment after the bindings are created.
	k8stest.WaitFor(t, "the chart's RBAC for the injector", func() bool {
		status, _ := env.DoAs(context.Background(), k8stest.UserToken("injector"), http.MethodGet, secretPath, nil, nil)
		return status == http.StatusNotFound
	})
	startSelf := func() (stop func(), data map[string][]byte) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		logs := &syncWriter{w: &bytes.Buffer{}}
		go func() {
			done <- run(ctx, append(append([]string{}, args...), kubeArgs(k8stest.UserToken("injector"))...), noenv, nil, io.Discard, logs)
		}()
		stop = func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("inject serve: %v\n%s", err, logs.String())
				}
			case <-time.After(10 * time.Second):
				t.Error("inject serve did not stop")
			}
		}
		var s struct{ Data map[string][]byte }
		k8stest.WaitFor(t, "the injector's Secret", func() bool {
			select {
			case err := <-done:
				t.Fatalf("inject serve ended: %v\n%s", err, logs.String())
			default:
			}
			status, _ := env.Do(context.Background(), http.MethodGet, secretPath, nil, &s)
			return status == http.StatusOK
		})
		waitInjector(t, "localhost:"+port, s.Data["ca.crt"], done)
		return stop, s.Data
	}
	stop, data := startSelf()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if status, err := env.Do(context.Background(), http.MethodGet, k8stest.Path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", webhookName), nil, &mwc); err != nil || status != http.StatusOK {
		t.Fatalf("get webhook configuration: %d %v", status, err)
	}
	for _, w := range mwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, data["ca.crt"]) {
			t.Errorf("webhook %s caBundle (%d bytes) is not the Secret's ca.crt", w.Name, len(w.ClientConfig.CABundle))
		}
	}
	// The API server trusts the injector through the patched caBundle.
	k8stest.WaitFor(t, "an injected pod through the self-signed webhook", func() bool {
		pod, status, _ := createPod(t, env, ns, annotatedPod("self"), true)
		return status == http.StatusCreated && count(pod, inject.SendguardContainer) == 1 && count(pod, inject.EnvoyContainer) == 1
	})
	stop()

	// A restart reuses the Secret.
	stop, again := startSelf()
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if !bytes.Equal(again[k], data[k]) {
			t.Errorf("restart replaced %s", k)
		}
	}
	pod, status, raw := createPod(t, env, ns, annotatedPod("self-again"), false)
	if status != http.StatusCreated || count(pod, inject.SendguardContainer) != 1 {
		t.Errorf("pod after the injector's restart: %d, %d sendguard containers: %s", status, count(pod, inject.SendguardContainer), raw)
	}
	stop()
}
