package k8stest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/internal/k8stest"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

const chartDir = "../../charts/sendguard"

// kinds are the built-in kinds the chart may render: the Go type a
// document must decode into strictly, and the REST resource to dry-run it
// against.
var kinds = map[string]struct {
	apiVersion, resource string
	namespaced           bool
	new                  func() any
}{
	"ConfigMap":                      {"v1", "configmaps", true, func() any { return &corev1.ConfigMap{} }},
	"Secret":                         {"v1", "secrets", true, func() any { return &corev1.Secret{} }},
	"Service":                        {"v1", "services", true, func() any { return &corev1.Service{} }},
	"ServiceAccount":                 {"v1", "serviceaccounts", true, func() any { return &corev1.ServiceAccount{} }},
	"Deployment":                     {"apps/v1", "deployments", true, func() any { return &appsv1.Deployment{} }},
	"StatefulSet":                    {"apps/v1", "statefulsets", true, func() any { return &appsv1.StatefulSet{} }},
	"HorizontalPodAutoscaler":        {"autoscaling/v2", "horizontalpodautoscalers", true, func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"PodDisruptionBudget":            {"policy/v1", "poddisruptionbudgets", true, func() any { return &policyv1.PodDisruptionBudget{} }},
	"NetworkPolicy":                  {"networking.k8s.io/v1", "networkpolicies", true, func() any { return &networkingv1.NetworkPolicy{} }},
	"Role":                           {"rbac.authorization.k8s.io/v1", "roles", true, func() any { return &rbacv1.Role{} }},
	"RoleBinding":                    {"rbac.authorization.k8s.io/v1", "rolebindings", true, func() any { return &rbacv1.RoleBinding{} }},
	"ClusterRole":                    {"rbac.authorization.k8s.io/v1", "clusterroles", false, func() any { return &rbacv1.ClusterRole{} }},
	"ClusterRoleBinding":             {"rbac.authorization.k8s.io/v1", "clusterrolebindings", false, func() any { return &rbacv1.ClusterRoleBinding{} }},
	"MutatingWebhookConfiguration":   {"admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", false, func() any { return &admissionregistrationv1.MutatingWebhookConfiguration{} }},
	"ValidatingWebhookConfiguration": {"admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", false, func() any { return &admissionregistrationv1.ValidatingWebhookConfiguration{} }},
}

// crds are the custom kinds the chart may render. The API server knows
// them only through CRDs, which these tests register without a schema
// (x-kubernetes-preserve-unknown-fields): the dry run checks their
// group, version, kind, scope and metadata, not their spec.
var crds = map[string]struct{ group, version, plural string }{
	"Certificate":         {"cert-manager.io", "v1", "certificates"},
	"Issuer":              {"cert-manager.io", "v1", "issuers"},
	"AuthorizationPolicy": {"security.istio.io", "v1", "authorizationpolicies"},
	"ServiceMonitor":      {"monitoring.coreos.com", "v1", "servicemonitors"},
}

// helm runs the helm binary from make k8s-bin with a private home, so
// nothing of the user's helm configuration is read.
func helm(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(k8stest.Binary(t, "helm"), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home,
		"KUBECONFIG="+kubeconfig)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// chartCases are the chart's defaults and every values file in ci/.
func chartCases(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no values files in charts/sendguard/ci")
	}
	cases := map[string][]string{"default": nil}
	for _, f := range files {
		cases[strings.TrimSuffix(filepath.Base(f), ".yaml")] = []string{"-f", f}
	}
	return cases
}

// documents splits helm template's output into its non-empty documents.
func documents(out string) []string {
	var docs []string
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(out, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// registerCRDs registers the custom kinds of crds, schema-less.
func registerCRDs(t *testing.T, env *k8stest.Env) {
	t.Helper()
	names := make([]string, 0, len(crds))
	for kind := range crds {
		names = append(names, kind)
	}
	sort.Strings(names)
	for _, kind := range names {
		c := crds[kind]
		crd := map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": c.plural + "." + c.group},
			"spec": map[string]any{
				"group": c.group,
				"scope": "Namespaced",
				"names": map[string]any{"plural": c.plural, "singular": strings.ToLower(kind), "kind": kind},
				"versions": []any{map[string]any{
					"name": c.version, "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
				}},
			},
		}
		var raw []byte
		status, err := env.Do(context.Background(), http.MethodPost, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, &raw)
		if err != nil || (status != http.StatusCreated && status != http.StatusConflict) {
			t.Fatalf("create CRD %s: %d %v %s", kind, status, err, raw)
		}
	}
	// A new CRD is served a moment after it is created.
	for _, kind := range names {
		c := crds[kind]
		k8stest.WaitFor(t, fmt.Sprintf("CRD %s served", kind), func() bool {
			status, _ := env.Do(context.Background(), http.MethodGet, "/apis/"+c.group+"/"+c.version+"/"+c.plural, nil, nil)
			return status == http.StatusOK
		})
	}
}

// TestChartRendersValidObjects lints and renders the chart with its
// defaults and with each values file in ci/; every rendered document must
// decode strictly into its k8s.io/api type (a misspelt or misplaced field
// is an error) and be accepted by the API server in a server-side dry run
// with strict field validation.
func TestChartRendersValidObjects(t *testing.T) {
	env := k8stest.Start(t)
	registerCRDs(t, env)
	cases := chartCases(t)
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, name := range names {
		args := cases[name]
		t.Run(name, func(t *testing.T) {
			if out, errOut, err := helm(t, env.Kubeconfig, append([]string{"lint", "--strict", chartDir}, args...)...); err != nil {
				t.Fatalf("helm lint --strict %v: %v\n%s%s", args, err, out, errOut)
			}
			ns := fmt.Sprintf("chart-%d", i)
			out, errOut, err := helm(t, env.Kubeconfig, append([]string{"template", "sg", chartDir, "--namespace", ns}, args...)...)
			if err != nil {
				t.Fatalf("helm template %v: %v\n%s", args, err, errOut)
			}
			env.Namespace(t, ns, nil)
			docs := documents(out)
			if len(docs) == 0 {
				t.Fatal("helm template rendered nothing")
			}
			// Objects for other namespaces (a NetworkPolicy or an
			// AuthorizationPolicy next to the senders) need those to exist.
			for _, doc := range docs {
				var m struct {
					Metadata struct{ Namespace string } `json:"metadata"`
				}
				if yaml.Unmarshal([]byte(doc), &m) != nil || m.Metadata.Namespace == "" || m.Metadata.Namespace == ns {
					continue
				}
				nsObj := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": m.Metadata.Namespace}}
				if status, err := env.Do(context.Background(), http.MethodPost, "/api/v1/namespaces", nsObj, nil); err != nil || (status != http.StatusCreated && status != http.StatusConflict) {
					t.Fatalf("create namespace %s: %d %v", m.Metadata.Namespace, status, err)
				}
			}
			for _, doc := range docs {
				var meta struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
					Metadata   struct {
						Name      string `json:"name"`
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
					t.Fatalf("document is not YAML: %v\n%s", err, doc)
				}
				id := meta.Kind + "/" + meta.Metadata.Name
				var path string
				if k, ok := kinds[meta.Kind]; ok {
					if meta.APIVersion != k.apiVersion {
						t.Errorf("%s: apiVersion %s, want %s", id, meta.APIVersion, k.apiVersion)
						continue
					}
					if err := yaml.UnmarshalStrict([]byte(doc), k.new()); err != nil {
						t.Errorf("%s does not decode strictly into its k8s.io/api type: %v", id, err)
					}
					if k.namespaced != (meta.Metadata.Namespace != "") {
						t.Errorf("%s: namespace %q, want namespaced %v", id, meta.Metadata.Namespace, k.namespaced)
					}
					path = k8stest.Path(k.apiVersion, k.resource, meta.Metadata.Namespace, "")
				} else if c, ok := crds[meta.Kind]; ok && meta.APIVersion == c.group+"/"+c.version {
					path = k8stest.Path(meta.APIVersion, c.plural, meta.Metadata.Namespace, "")
				} else {
					t.Errorf("%s %s: a kind this test does not know; add it to kinds or crds", meta.APIVersion, id)
					continue
				}
				obj, err := yaml.YAMLToJSON([]byte(doc))
				if err != nil {
					t.Fatal(err)
				}
				var raw []byte
				status, err := env.Do(context.Background(), http.MethodPost, path+"?dryRun=All&fieldValidation=Strict", obj, &raw)
				if err != nil || status != http.StatusCreated {
					t.Errorf("API server refused %s (%s dry run): %d %v\n%s", id, path, status, err, raw)
				}
			}
		})
	}
}

// TestChartSchemaRefusesBadValues: values outside values.schema.json
// stop helm before anything is rendered.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	k8stest.Binary(t, "helm")
	for _, c := range []struct{ name, set string }{
		{"unknown mode", "mode=sidecar"},
		{"unknown top-level key", "replicaCount=2"},
		{"unknown injector key", "injector.failurepolicy=Fail"},
		{"bad failurePolicy", "injector.failurePolicy=Maybe"},
		{"zero replicas", "injector.replicas=0"},
		{"timeout above 30", "injector.timeoutSeconds=31"},
		{"string classic", "injector.classic=yes"},
		{"perPodLimits not refuse or accept", "injector.perPodLimits=allow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, err := helm(t, "", "template", "sg", chartDir, "--set", c.set)
			if err == nil {
				t.Fatalf("helm template --set %s rendered (%d bytes), want a schema error", c.set, len(out))
			}
			if !strings.Contains(errOut, "schema") {
				t.Errorf("helm template --set %s: %s, want a schema error", c.set, errOut)
			}
		})
	}
}

// TestChartInstallAndUpgrade: helm install of the injector mode against
// the API server creates its objects (the webhook configuration without a
// caBundle: the injector patches it in), and helm upgrade keeps the
// caBundle the injector patched in (it is in neither the old nor the new
// manifest) while applying the new values.
func TestChartInstallAndUpgrade(t *testing.T) {
	env := k8stest.Start(t)
	const ns = "sg-install"
	if out, errOut, err := helm(t, env.Kubeconfig, "install", "sg", chartDir, "--namespace", ns, "--create-namespace"); err != nil {
		t.Fatalf("helm install: %v\n%s%s", err, out, errOut)
	}
	const mwcName = "sg-sendguard-injector-" + ns
	mwcPath := k8stest.Path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", mwcName)
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if status, err := env.Do(context.Background(), http.MethodGet, mwcPath, nil, &mwc); err != nil || status != http.StatusOK {
		t.Fatalf("get %s after helm install: %d %v", mwcName, status, err)
	}
	if len(mwc.Webhooks) != 2 {
		t.Fatalf("installed webhook configuration %+v, want two webhooks (pods, workloads)", mwc.Webhooks)
	}
	for _, w := range mwc.Webhooks {
		if len(w.ClientConfig.CABundle) != 0 || *w.FailurePolicy != admissionregistrationv1.Fail {
			t.Fatalf("installed webhook %s: caBundle %d bytes, failurePolicy %s; want none and Fail", w.Name, len(w.ClientConfig.CABundle), *w.FailurePolicy)
		}
	}
	for _, p := range []string{
		k8stest.Path("apps/v1", "deployments", ns, "sg-sendguard-injector"),
		k8stest.Path("v1", "services", ns, "sg-sendguard-injector"),
		k8stest.Path("v1", "serviceaccounts", ns, "sg-sendguard"),
		k8stest.Path("rbac.authorization.k8s.io/v1", "roles", ns, "sg-sendguard-injector-certs"),
		k8stest.Path("rbac.authorization.k8s.io/v1", "clusterroles", "", "sg-sendguard-injector-"+ns+"-cabundle"),
		k8stest.Path("rbac.authorization.k8s.io/v1", "clusterroles", "", "sg-sendguard-injector-"+ns+"-workloads"),
		k8stest.Path("rbac.authorization.k8s.io/v1", "clusterrolebindings", "", "sg-sendguard-injector-"+ns+"-workloads"),
	} {
		env.Must(t, http.StatusOK, http.MethodGet, p, nil)
	}
	// What the injector does at start.
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	b64 := base64.StdEncoding.EncodeToString(bundle)
	patch := fmt.Sprintf(`[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":%q},{"op":"add","path":"/webhooks/1/clientConfig/caBundle","value":%q}]`, b64, b64)
	env.Must(t, http.StatusOK, http.MethodPatch, mwcPath, []byte(patch))

	if out, errOut, err := helm(t, env.Kubeconfig, "upgrade", "sg", chartDir, "--namespace", ns, "--set", "injector.failurePolicy=Ignore"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s%s", err, out, errOut)
	}
	mwc = admissionregistrationv1.MutatingWebhookConfiguration{}
	if status, err := env.Do(context.Background(), http.MethodGet, mwcPath, nil, &mwc); err != nil || status != http.StatusOK {
		t.Fatalf("get %s after helm upgrade: %d %v", mwcName, status, err)
	}
	for _, w := range mwc.Webhooks {
		if got := w.ClientConfig.CABundle; !bytes.Equal(got, bundle) {
			t.Errorf("webhook %s caBundle after helm upgrade = %q, want the patched one kept", w.Name, got)
		}
		if *w.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("webhook %s failurePolicy after helm upgrade --set injector.failurePolicy=Ignore = %s", w.Name, *w.FailurePolicy)
		}
	}
}

// TestChartNotesPerPodLimits: NOTES (rendered by helm install --dry-run
// against the API server) tells an injector user what happens to more
// than one replica on the embedded store, and how to accept it, for each
// injector.perPodLimits, DaemonSets and Jobs included; and, with an
// objectSelector, that pod templates (not workloads) are matched.
func TestChartNotesPerPodLimits(t *testing.T) {
	env := k8stest.Start(t)
	env.Namespace(t, "sg-notes", nil)
	for _, c := range []struct {
		name string
		set  []string
		want []string
		not  []string
	}{
		{"refuse", nil, []string{"refuses the sender's", "its DaemonSet (one pod per node)", "Job or CronJob running more than one pod at once", `sendguard.io/per-pod-limits: "accept"`, `sendguard.io/store: "redis"`}, []string{"objectSelector is set"}},
		{"accept", []string{"--set", "injector.perPodLimits=accept"}, []string{"accepts (injector.perPodLimits=accept)", `sendguard.io/per-pod-limits: "refuse"`}, []string{"refuses the sender's"}},
		{"object selector", []string{"--set", "injector.objectSelector.matchLabels.team=messaging"}, []string{"objectSelector is set", "pod template labels", "their scales and HPAs too"}, []string{"never a scale"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, err := helm(t, env.Kubeconfig, append([]string{"install", "sg", chartDir, "--namespace", "sg-notes", "--dry-run=server"}, c.set...)...)
			if err != nil {
				t.Fatalf("helm install --dry-run: %v\n%s", err, errOut)
			}
			_, notes, ok := strings.Cut(out, "NOTES:")
			if !ok {
				t.Fatalf("no NOTES in helm install --dry-run:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			for _, w := range c.not {
				if strings.Contains(notes, w) {
					t.Errorf("NOTES say %q:\n%s", w, notes)
				}
			}
		})
	}
}
