// Package chart renders the Helm chart in charts/sendguard with the helm
// binary and decodes what it renders, strictly, into k8s.io/api types: the
// chart's tests assert on typed objects, and a misspelt field in a template
// is a decoding error, not a silently dropped line.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// ErrNoHelm is Helm's answer when no helm binary is found.
var ErrNoHelm = errors.New("no helm binary: set HELM_BIN, or put helm in .cache/k8s/bin or on PATH")

// Helm finds the helm binary: $HELM_BIN (getenv), else
// <root>/.cache/k8s/bin/helm (where the Kubernetes test environment caches
// it), else helm on PATH. root is the repository's root.
func Helm(root string, getenv func(string) string) (string, error) {
	if p := getenv("HELM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HELM_BIN: %w", err)
		}
		return p, nil
	}
	if p := filepath.Join(root, ".cache", "k8s", "bin", "helm"); isExec(p) {
		return p, nil
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	return "", ErrNoHelm
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Template runs `helm template <release> <chartDir> --namespace <ns>
// <args...>` and returns the rendered manifests. A refusal (a template's
// fail, a value outside values.schema.json) is an error holding helm's
// message.
func Template(ctx context.Context, helm, chartDir, release, ns string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, helm, append([]string{"template", release, chartDir, "--namespace", ns}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// No repositories, no plugins, no user configuration.
	home := os.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "sendguard-helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "sendguard-helm-config"), "HELM_DATA_HOME="+filepath.Join(home, "sendguard-helm-data"))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// An Object is one rendered document: its kind and name, and Typed, the
// k8s.io/api value it decoded into (nil for kinds outside k8s.io/api, such
// as ServiceMonitor), and Raw, the document as a generic map.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	Typed                             any
	Raw                               map[string]any
}

// typed are the kinds the chart renders that k8s.io/api defines.
var typed = map[string]func() any{
	"apps/v1 Deployment":                     func() any { return new(appsv1.Deployment) },
	"apps/v1 StatefulSet":                    func() any { return new(appsv1.StatefulSet) },
	"v1 Service":                             func() any { return new(corev1.Service) },
	"v1 Secret":                              func() any { return new(corev1.Secret) },
	"v1 ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1 ServiceAccount":                      func() any { return new(corev1.ServiceAccount) },
	"policy/v1 PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2 HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1 NetworkPolicy":     func() any { return new(networkingv1.NetworkPolicy) },
	"admissionregistration.k8s.io/v1 MutatingWebhookConfiguration": func() any { return new(admissionregistrationv1.MutatingWebhookConfiguration) },
	"rbac.authorization.k8s.io/v1 Role":                            func() any { return new(rbacv1.Role) },
	"rbac.authorization.k8s.io/v1 RoleBinding":                     func() any { return new(rbacv1.RoleBinding) },
	"rbac.authorization.k8s.io/v1 ClusterRole":                     func() any { return new(rbacv1.ClusterRole) },
	"rbac.authorization.k8s.io/v1 ClusterRoleBinding":              func() any { return new(rbacv1.ClusterRoleBinding) },
}

// Decode splits helm's output into documents and decodes each: strictly
// into its k8s.io/api type when there is one (an unknown field is an
// error), and always into Raw.
func Decode(manifests []byte) ([]Object, error) {
	var objs []Object
	for i, doc := range bytes.Split(manifests, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var o Object
		if err := yaml.Unmarshal(doc, &o.Raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		o.APIVersion, _ = o.Raw["apiVersion"].(string)
		o.Kind, _ = o.Raw["kind"].(string)
		meta, _ := o.Raw["metadata"].(map[string]any)
		o.Name, _ = meta["name"].(string)
		o.Namespace, _ = meta["namespace"].(string)
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("document %d: no apiVersion, kind or name:\n%s", i, doc)
		}
		if mk, ok := typed[o.APIVersion+" "+o.Kind]; ok {
			o.Typed = mk()
			if err := yaml.UnmarshalStrict(doc, o.Typed); err != nil {
				return nil, fmt.Errorf("%s %s: %w", o.Kind, o.Name, err)
			}
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// PodSpec is the pod template of a Deployment or StatefulSet; nil for
// other kinds.
func (o Object) PodSpec() *corev1.PodSpec {
	switch v := o.Typed.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &v.Spec.Template.Spec
	}
	return nil
}
