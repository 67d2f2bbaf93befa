package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/envoy"
	"github.com/sendguard/sendguard/envoy/envoytest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml")

// testOptions are the options every golden file was made with; a case
// whose name starts with "classic" adds Classic, one starting with
// "accept" PerPodLimits accept.
func testOptions(name string) Options {
	o := Options{
		Version:        "1.2.3",
		SendguardImage: "example.com/sendguard:1.2.3",
		EnvoyImage:     "example.com/envoy:v1.40.0",
		Namespace:      "sendguard-system",
		Classic:        strings.HasPrefix(name, "classic"),
	}
	if strings.HasPrefix(name, "accept") {
		o.PerPodLimits = PerPodAccept
	}
	return o
}

// TestGolden runs Manifests on testdata/NAME.in.yaml and compares the
// result with NAME.golden.yaml (an error is written there as "error: ...").
// In the golden files each injected Envoy config is replaced by the ports
// it was rendered with, after checking that it is exactly envoy.Render of
// those ports: the goldens do not change with every edit of sidecar.yaml.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			opts := testOptions(name)
			var out bytes.Buffer
			n, err := Manifests(bytes.NewReader(src), &out, opts)
			var got []byte
			if err != nil {
				if out.Len() != 0 {
					t.Errorf("Manifests wrote %d bytes and failed", out.Len())
				}
				got = []byte("error: " + err.Error() + "\n")
			} else {
				checkOutput(t, src, out.Bytes(), n, opts)
				got = placeholders(t, out.Bytes())
			}
			golden := strings.TrimSuffix(in, ".in.yaml") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("Manifests(%s) differs from %s (-want +got):\n%s", in, golden, d)
			}
		})
	}
}

// checkOutput asserts what must hold for every successful output:
// idempotence, strict decoding, untouched documents byte for byte, and each
// injected pod template carrying the sidecars exactly once.
func checkOutput(t *testing.T, src, out []byte, n int, opts Options) {
	t.Helper()
	var again bytes.Buffer
	m, err := Manifests(bytes.NewReader(out), &again, opts)
	if err != nil || m != 0 || !bytes.Equal(again.Bytes(), out) {
		t.Errorf("Manifests(Manifests(x)) = %d injected, err %v, same bytes %v; want 0, nil, true", m, err, bytes.Equal(again.Bytes(), out))
	}
	inDocs, outDocs := docs(t, src), docs(t, out)
	if len(inDocs) != len(outDocs) {
		t.Fatalf("%d documents in, %d out", len(inDocs), len(outDocs))
	}
	changed := 0
	for i := range outDocs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(outDocs[i], &tm); err != nil {
			t.Fatal(err)
		}
		if tm.Kind == "" {
			t.Errorf("document %d lost its kind", i+1)
		}
		tpls := strictTemplates(t, tm, outDocs[i])
		if bytes.Equal(inDocs[i], outDocs[i]) {
			continue
		}
		changed++
		for _, tpl := range tpls {
			checkInjected(t, tpl, opts)
		}
	}
	if changed != n {
		t.Errorf("Manifests reported %d injected, %d documents changed", n, changed)
	}
}

func docs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var ds [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return ds
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(d)) > 0 {
			ds = append(ds, d)
		}
	}
}

// strictTemplates decodes doc strictly into its k8s.io/api type and returns
// its pod template(s).
func strictTemplates(t *testing.T, tm metav1.TypeMeta, doc []byte) []*corev1.PodTemplateSpec {
	t.Helper()
	var obj any
	var tpl func() *corev1.PodTemplateSpec
	switch tm.Kind {
	case "Pod":
		o := &corev1.Pod{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec} }
	case "Deployment":
		o := &appsv1.Deployment{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.Template }
	case "StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.Template }
	case "DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.Template }
	case "ReplicaSet":
		o := &appsv1.ReplicaSet{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.Template }
	case "Job":
		o := &batchv1.Job{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.Template }
	case "CronJob":
		o := &batchv1.CronJob{}
		obj, tpl = o, func() *corev1.PodTemplateSpec { return &o.Spec.JobTemplate.Spec.Template }
	case "Service":
		obj = &corev1.Service{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
		if tm.APIVersion == "autoscaling/v1" {
			obj = &autoscalingv1.HorizontalPodAutoscaler{}
		}
	default:
		t.Fatalf("fixture kind %q: add it to strictTemplates", tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("strict decode of %s: %v", tm.Kind, err)
	}
	if tpl == nil {
		return nil
	}
	return []*corev1.PodTemplateSpec{tpl()}
}

func checkInjected(t *testing.T, tpl *corev1.PodTemplateSpec, opts Options) {
	t.Helper()
	if got := tpl.Annotations[AnnotationStatus]; got != opts.Version {
		t.Errorf("%s = %q, want %q", AnnotationStatus, got, opts.Version)
	}
	where := tpl.Spec.InitContainers
	if opts.Classic {
		where = tpl.Spec.Containers
	}
	count := map[string]int{}
	for _, cs := range [][]corev1.Container{tpl.Spec.InitContainers, tpl.Spec.Containers} {
		for _, c := range cs {
			count[c.Name]++
		}
	}
	if count[SendguardContainer] != 1 || count[EnvoyContainer] != 1 {
		t.Fatalf("containers %v, want sendguard and sendguard-envoy once each", count)
	}
	for i, name := range []string{SendguardContainer, EnvoyContainer} {
		c := where[len(where)-2+i]
		if c.Name != name {
			t.Fatalf("container %d from the end = %q, want %q", 2-i, c.Name, name)
		}
		native := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if native == opts.Classic {
			t.Errorf("%s restartPolicy %v with Classic %v", name, c.RestartPolicy, opts.Classic)
		}
		sc := c.SecurityContext
		if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
			len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s securityContext %+v: not locked down", name, sc)
		}
	}
	vols := map[string]bool{}
	for _, v := range tpl.Spec.Volumes {
		vols[v.Name] = true
	}
	for _, c := range where[len(where)-2:] {
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("%s mounts %q, which is not a volume", c.Name, m.Name)
			}
		}
	}
}

// placeholders replaces each Envoy config in out by the ports it was
// rendered with, failing unless it is exactly the compacted envoy.Render of
// those ports.
func placeholders(t *testing.T, out []byte) []byte {
	t.Helper()
	s := string(out)
	for _, d := range docs(t, out) {
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			t.Fatal(err)
		}
		for _, cfg := range envoyConfigs(m) {
			p := configPorts(t, cfg)
			want, err := envoy.Render(p, envoy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, err := yaml.YAMLToJSON([]byte(want))
			if err != nil {
				t.Fatal(err)
			}
			if cfg != string(wantJSON) {
				t.Errorf("Envoy config is not envoy.Render(%+v)", p)
			}
			// The config is the list item after "- --config-yaml", folded
			// over continuation lines indented deeper than the item.
			lines := strings.Split(s, "\n")
			i := 0
			for i < len(lines) && strings.TrimSpace(lines[i]) != "- --config-yaml" {
				i++
			}
			if i+1 >= len(lines) {
				t.Fatalf("no --config-yaml item left in the output")
			}
			indent := lines[i][:strings.Index(lines[i], "-")]
			j := i + 2
			for j < len(lines) && strings.HasPrefix(lines[j], indent+"  ") {
				j++
			}
			item := fmt.Sprintf("%s- ENVOY_CONFIG(listen=%d grpc=%d sender=%d webhook=%d admin=%d)", indent, p.Listen, p.GRPC, p.Sender, p.Webhook, p.Admin)
			lines = append(lines[:i+1], append([]string{item}, lines[j:]...)...)
			s = strings.Join(lines, "\n")
		}
	}
	return []byte(s)
}

func envoyConfigs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if v["name"] == EnvoyContainer {
			if args, ok := v["args"].([]any); ok && len(args) > 1 && args[0] == "--config-yaml" {
				out = append(out, args[1].(string))
			}
		}
		for _, e := range v {
			out = append(out, envoyConfigs(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, envoyConfigs(e)...)
		}
	}
	return out
}

func configPorts(t *testing.T, cfg string) envoy.Ports {
	t.Helper()
	type sock struct {
		SocketAddress struct {
			PortValue int `json:"port_value"`
		} `json:"socket_address"`
	}
	var c struct {
		Admin struct {
			Address sock `json:"address"`
		} `json:"admin"`
		StaticResources struct {
			Listeners []struct {
				Address sock `json:"address"`
			} `json:"listeners"`
			Clusters []struct {
				Name           string `json:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address sock `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatalf("Envoy config is not JSON: %v", err)
	}
	p := envoy.Ports{Admin: c.Admin.Address.SocketAddress.PortValue}
	if len(c.StaticResources.Listeners) != 1 {
		t.Fatalf("Envoy config has %d listeners, want 1", len(c.StaticResources.Listeners))
	}
	p.Listen = c.StaticResources.Listeners[0].Address.SocketAddress.PortValue
	for _, cl := range c.StaticResources.Clusters {
		port := cl.LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address.SocketAddress.PortValue
		switch cl.Name {
		case "sendguard":
			p.GRPC = port
		case "sender":
			p.Sender = port
		case "webhook":
			p.Webhook = port
		}
	}
	return p
}

func TestPodDoesNotModifyInput(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{AnnotationInject: "true"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	before := pod.DeepCopy()
	got, ok, err := Pod(pod, "default", testOptions(""))
	if err != nil || !ok {
		t.Fatalf("Pod() = %v, %v; want injected", ok, err)
	}
	if d := cmp.Diff(before, pod); d != "" {
		t.Errorf("Pod modified its input (-before +after):\n%s", d)
	}
	again, ok, err := Pod(got, "default", testOptions(""))
	if err != nil || ok || again != got {
		t.Errorf("Pod(Pod(x)) = %v, %v; want the same pod, not injected", ok, err)
	}
	// The namespace of the request counts when the pod carries none.
	if _, ok, _ := Pod(pod, "kube-system", testOptions("")); ok {
		t.Errorf("Pod(ns kube-system) injected")
	}
}

// TestEnvoyValidatesInjectedConfig runs `envoy --mode validate` on the
// config exactly as the injector puts it in the pod spec.
func TestEnvoyValidatesInjectedConfig(t *testing.T) {
	bin := envoyBinary(t)
	for _, p := range []int32{8080, 3000} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{AnnotationInject: "true"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: p}}}}},
		}
		got, ok, err := Pod(pod, "default", testOptions(""))
		if err != nil || !ok {
			t.Fatalf("Pod() = %v, %v", ok, err)
		}
		c := got.Spec.InitContainers[len(got.Spec.InitContainers)-1]
		args := append([]string{"--mode", "validate"}, c.Args...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("envoy --mode validate on the injected config (sender %d): %v\n%s", p, err, out)
		}
	}
}

func envoyBinary(t *testing.T) string { return envoytest.Binary(t) }
