package main

// Per-pod limits against a real API server: the chart's webhook
// configuration (both webhooks) calls `inject serve`, which reads workloads
// with the chart's get-only ClusterRole, bound to the ServiceAccount whose
// token k8stest has.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/k8stest"
)

// perPodMessage is how the API server words the workload webhook's
// refusal, up to the object.
const perPodMessage = `admission webhook "workloads.sendguard.io" denied the request: sendguard: per-pod limits: `

// chartWorkloadRBAC creates the chart's workloads ClusterRole and its
// binding, rendered for release sendguard in namespace sendguard-system
// (the ServiceAccount of k8stest.UserToken("injector")), renamed with
// prefix so that they cannot collide with TestSelfSignedInjector's, and
// waits until the injector's token may get Deployments in ns.
func chartWorkloadRBAC(t *testing.T, env *k8stest.Env, prefix, ns string) {
	t.Helper()
	out := helmTemplate(t, "sendguard", "sendguard-system", "--show-only=templates/injector-rbac.yaml")
	n := 0
	for _, doc := range strings.Split(out, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil || m == nil {
			continue
		}
		meta := m["metadata"].(map[string]any)
		name := meta["name"].(string)
		if !strings.HasSuffix(name, "-workloads") {
			continue
		}
		n++
		meta["name"] = prefix + name
		resource := "clusterroles"
		if m["kind"] == "ClusterRoleBinding" {
			resource = "clusterrolebindings"
			m["roleRef"].(map[string]any)["name"] = prefix + name
		}
		path := k8stest.Path("rbac.authorization.k8s.io/v1", resource, "", "")
		env.Must(t, http.StatusCreated, http.MethodPost, path, m)
		t.Cleanup(func() { env.Do(context.Background(), http.MethodDelete, path+"/"+prefix+name, nil, nil) })
	}
	if n != 2 {
		t.Fatalf("chart renders %d workloads RBAC objects, want a ClusterRole and its binding", n)
	}
	k8stest.WaitFor(t, "the chart's workloads RBAC for the injector", func() bool {
		status, _ := env.DoAs(context.Background(), k8stest.UserToken("injector"), http.MethodGet, k8stest.Path("apps/v1", "deployments", ns, "none"), nil, nil)
		return status == http.StatusNotFound
	})
}

// kubeFlags are the injector's API server flags with the token of user
// ("injector" or "nobody").
func kubeFlags(t *testing.T, env *k8stest.Env, user string) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(k8stest.UserToken(user)), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--kube-api", env.URL, "--kube-ca-file", env.CAFile, "--kube-token-file", f}
}

// workloadOf returns a Deployment or StatefulSet named name (label
// app=name) of replicas annotated senders, with extra template
// annotations.
func workloadOf(kind, name string, replicas int32, ann map[string]string) any {
	p := annotatedPod("")
	for k, v := range ann {
		p.Annotations[k] = v
	}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: objectMeta("", p.Annotations), Spec: p.Spec}
	tmpl.Labels = map[string]string{"app": name}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	if kind == "StatefulSet" {
		return &appsv1.StatefulSet{TypeMeta: typeMeta("apps/v1", kind), ObjectMeta: objectMeta(name, nil),
			Spec: appsv1.StatefulSetSpec{Replicas: &replicas, ServiceName: name, Selector: sel, Template: tmpl}}
	}
	return &appsv1.Deployment{TypeMeta: typeMeta("apps/v1", kind), ObjectMeta: objectMeta(name, nil),
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: sel, Template: tmpl}}
}

// send sends one request as the admin and returns the status and body.
func send(t *testing.T, env *k8stest.Env, method, path string, body any) (int, string) {
	t.Helper()
	var raw []byte
	status, err := env.Do(context.Background(), method, path, body, &raw)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, string(raw)
}

// refusedWith checks a 403 from the workload webhook naming what.
func refusedWith(t *testing.T, what string, status int, raw, want string) {
	t.Helper()
	var st metav1.Status
	json.Unmarshal([]byte(raw), &st)
	m := st.Message
	if status != http.StatusForbidden || st.Code != http.StatusForbidden || !strings.HasPrefix(m, perPodMessage+want) ||
		!strings.Contains(m, `sendguard.io/per-pod-limits: "accept"`) || !strings.Contains(m, `sendguard.io/store: "redis"`) || !strings.Contains(m, "run 1 replica") {
		t.Errorf("%s = %d %s, want 403 %q naming the fixes", what, status, raw, perPodMessage+want)
	}
}

func hpa(name, kind, target string, max int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{TypeMeta: typeMeta("autoscaling/v2", "HorizontalPodAutoscaler"), ObjectMeta: objectMeta(name, nil),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: kind, Name: target}, MaxReplicas: max}}
}

// TestKubeRefusesPerPodReplicas: with the chart's webhook configuration
// pointed at `inject serve` (reading workloads with the chart's RBAC), an
// annotated Deployment of 3 replicas on the embedded store is refused with
// the message; with 1 replica it is admitted and the Deployment
// controller's pod is injected; scaling it to 3 through the scale
// subresource (kubectl scale, the HPA) or its spec, or an HPA with
// maxReplicas 5 on it, is refused; with sendguard.io/per-pod-limits:
// "accept", or sendguard.io/store: "redis", 3 replicas are admitted (and
// scale further); a StatefulSet likewise; an unannotated Deployment of 5
// replicas is stored untouched.
func TestKubeRefusesPerPodReplicas(t *testing.T) {
	env := k8stest.ControllerManager(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-controller-manager log (tail):\n%s", tail(env.Log("kube-controller-manager"), 4000))
		}
	})
	const ns = "pp-messaging"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})
	chartWorkloadRBAC(t, env, "pp-", ns)
	in := startInjector(t, kubeFlags(t, env, "injector")...)
	register(t, env, "pp-sendguard", in, "Fail", ns)
	deployments := k8stest.Path("apps/v1", "deployments", ns, "")
	statefulsets := k8stest.Path("apps/v1", "statefulsets", ns, "")
	scale := func(resource, name string, n int) (int, string) {
		return send(t, env, http.MethodPatch, k8stest.Path("apps/v1", resource, ns, name)+"/scale", fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n))
	}

	t.Run("3 replicas on the embedded store are refused", func(t *testing.T) {
		status, raw := send(t, env, http.MethodPost, deployments, workloadOf("Deployment", "sender3", 3, nil))
		refusedWith(t, "create Deployment sender3 (3 replicas)", status, raw, "Deployment "+ns+"/sender3: replicas 3 on sendguard's embedded store")
		if status, _ := send(t, env, http.MethodGet, deployments+"/sender3", nil); status != http.StatusNotFound {
			t.Errorf("refused Deployment stored: GET = %d", status)
		}
	})

	t.Run("1 replica is admitted and injected; scaling it to 3 is refused", func(t *testing.T) {
		if status, raw := send(t, env, http.MethodPost, deployments, workloadOf("Deployment", "sender", 1, nil)); status != http.StatusCreated {
			t.Fatalf("create Deployment sender (1 replica) = %d %s", status, raw)
		}
		rs := waitReplicaSet(t, env, ns, "", 1)
		checkInjected(t, &rs.pods[0])

		status, raw := scale("deployments", "sender", 3)
		refusedWith(t, "kubectl scale --replicas 3", status, raw, "scale of Deployment "+ns+"/sender: replicas 3")
		status, raw = send(t, env, http.MethodPatch, deployments+"/sender", []byte(`{"spec":{"replicas":3}}`))
		refusedWith(t, "patch spec.replicas 3", status, raw, "Deployment "+ns+"/sender: replicas 3")
		h := hpa("sender", "Deployment", "sender", 5)
		status, raw = send(t, env, http.MethodPost, k8stest.Path("autoscaling/v2", "horizontalpodautoscalers", ns, ""), h)
		refusedWith(t, "HPA maxReplicas 5", status, raw, "HorizontalPodAutoscaler sender of Deployment "+ns+"/sender: maxReplicas 5")
		// An autoscaling/v1 HPA reaches the webhook as v2 (matchPolicy
		// Equivalent).
		v1 := map[string]any{"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": map[string]any{"name": "sender-v1"},
			"spec": map[string]any{"scaleTargetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "sender"}, "maxReplicas": 4}}
		status, raw = send(t, env, http.MethodPost, k8stest.Path("autoscaling/v1", "horizontalpodautoscalers", ns, ""), v1)
		refusedWith(t, "autoscaling/v1 HPA maxReplicas 4", status, raw, "HorizontalPodAutoscaler sender-v1 of Deployment "+ns+"/sender: maxReplicas 4")

		var d appsv1.Deployment
		if status, err := env.Do(context.Background(), http.MethodGet, deployments+"/sender", nil, &d); err != nil || status != http.StatusOK || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("Deployment sender after the refusals: %d %v, replicas %s; want 1", status, err, fmt.Sprint(deref(d.Spec.Replicas)))
		}
		// What needs no second replica still goes through: a label, the
		// scale to 1 it already has.
		if status, raw := send(t, env, http.MethodPatch, deployments+"/sender", []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)); status != http.StatusOK {
			t.Errorf("label Deployment sender = %d %s", status, raw)
		}
		if status, raw := scale("deployments", "sender", 1); status != http.StatusOK {
			t.Errorf("scale to 1 = %d %s", status, raw)
		}
	})

	t.Run("accepting per-pod limits admits 3 replicas", func(t *testing.T) {
		accept := map[string]string{inject.AnnotationPerPodLimits: inject.PerPodAccept}
		if status, raw := send(t, env, http.MethodPost, deployments, workloadOf("Deployment", "accepted", 3, accept)); status != http.StatusCreated {
			t.Fatalf("create Deployment accepted (3 replicas, per-pod limits accepted) = %d %s", status, raw)
		}
		if status, raw := scale("deployments", "accepted", 5); status != http.StatusOK {
			t.Errorf("scale accepted to 5 = %d %s", status, raw)
		}
		if status, raw := send(t, env, http.MethodPost, k8stest.Path("autoscaling/v2", "horizontalpodautoscalers", ns, ""), hpa("accepted", "Deployment", "accepted", 10)); status != http.StatusCreated {
			t.Errorf("HPA on accepted = %d %s", status, raw)
		}
	})

	t.Run("Redis admits 3 replicas", func(t *testing.T) {
		redis := map[string]string{inject.AnnotationStore: "redis"}
		if status, raw := send(t, env, http.MethodPost, deployments, workloadOf("Deployment", "shared", 3, redis)); status != http.StatusCreated {
			t.Fatalf("create Deployment shared (3 replicas on Redis) = %d %s", status, raw)
		}
		if status, raw := scale("deployments", "shared", 6); status != http.StatusOK {
			t.Errorf("scale shared to 6 = %d %s", status, raw)
		}
	})

	t.Run("StatefulSet likewise", func(t *testing.T) {
		status, raw := send(t, env, http.MethodPost, statefulsets, workloadOf("StatefulSet", "ledger3", 3, nil))
		refusedWith(t, "create StatefulSet ledger3 (3 replicas)", status, raw, "StatefulSet "+ns+"/ledger3: replicas 3")
		if status, raw := send(t, env, http.MethodPost, statefulsets, workloadOf("StatefulSet", "ledger", 1, nil)); status != http.StatusCreated {
			t.Fatalf("create StatefulSet ledger (1 replica) = %d %s", status, raw)
		}
		status, raw = scale("statefulsets", "ledger", 2)
		refusedWith(t, "scale StatefulSet ledger to 2", status, raw, "scale of StatefulSet "+ns+"/ledger: replicas 2")
		for name, ann := range map[string]map[string]string{
			"ledger-accepted": {inject.AnnotationPerPodLimits: inject.PerPodAccept},
			"ledger-shared":   {inject.AnnotationStore: "redis"},
		} {
			if status, raw := send(t, env, http.MethodPost, statefulsets, workloadOf("StatefulSet", name, 3, ann)); status != http.StatusCreated {
				t.Errorf("create StatefulSet %s (3 replicas, %v) = %d %s", name, ann, status, raw)
			}
		}
	})

	t.Run("an unannotated Deployment of 5 replicas is untouched", func(t *testing.T) {
		d := workloadOf("Deployment", "worker", 5, nil).(*appsv1.Deployment)
		d.Spec.Template.Annotations = nil
		var got appsv1.Deployment
		status, err := env.Do(context.Background(), http.MethodPost, deployments, d, &got)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create Deployment worker (5 replicas, unannotated) = %d %v", status, err)
		}
		if *got.Spec.Replicas != 5 || len(got.Spec.Template.Annotations) != 0 || len(got.Spec.Template.Spec.InitContainers) != 0 || len(got.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("Deployment worker came back with replicas %d, template annotations %v, init %v, containers %v; want it as sent",
				*got.Spec.Replicas, got.Spec.Template.Annotations, names(got.Spec.Template.Spec.InitContainers), names(got.Spec.Template.Spec.Containers))
		}
		if status, raw := scale("deployments", "worker", 7); status != http.StatusOK {
			t.Errorf("scale worker to 7 = %d %s", status, raw)
		}
	})

	if logs := in.logs.String(); !strings.Contains(logs, "sendguard refused per-pod limits") {
		t.Errorf("injector logged no refusal:\n%s", logs)
	}
}

// TestKubePerPodLookupFollowsFailurePolicy: when `inject serve` cannot read
// the workload of a scale (here: a token without the chart's RBAC, so the
// API server answers 403), it answers HTTP 500 and the API server applies
// the webhook's failurePolicy: Fail refuses the scale, Ignore admits it.
// What needs no lookup (a Deployment's own replicas) is still decided. Each
// configuration selects only its own namespace (an extra label), so the
// two never see each other's requests.
func TestKubePerPodLookupFollowsFailurePolicy(t *testing.T) {
	env := k8stest.Start(t)
	for _, policy := range []string{"Fail", "Ignore"} {
		t.Run(policy, func(t *testing.T) {
			ns := "pp-lookup-" + strings.ToLower(policy)
			env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled", "sendguard.io/test": ns})
			in := startInjector(t, kubeFlags(t, env, "nobody")...)
			register(t, env, ns, in, policy, ns, "injector.namespaceSelector.matchLabels.sendguard\\.io/test="+ns)
			deployments := k8stest.Path("apps/v1", "deployments", ns, "")

			status, raw := send(t, env, http.MethodPost, deployments+"?dryRun=All", workloadOf("Deployment", "sender3", 3, nil))
			refusedWith(t, "create Deployment sender3 (3 replicas)", status, raw, "Deployment "+ns+"/sender3: replicas 3")
			if status, raw := send(t, env, http.MethodPost, deployments, workloadOf("Deployment", "sender", 1, nil)); status != http.StatusCreated {
				t.Fatalf("create Deployment sender (1 replica) = %d %s", status, raw)
			}
			status, raw = send(t, env, http.MethodPatch, deployments+"/sender/scale?dryRun=All", []byte(`{"spec":{"replicas":3}}`))
			switch policy {
			case "Fail":
				if status != http.StatusInternalServerError || !strings.Contains(raw, `failed calling webhook \"workloads.sendguard.io\"`) {
					t.Errorf("scale to 3 without RBAC, Fail = %d %s; want 500 failed calling webhook", status, raw)
				}
				t.Logf("the API server's answer: %s", raw)
			case "Ignore":
				var s struct {
					Spec struct{ Replicas int } `json:"spec"`
				}
				if status != http.StatusOK || json.Unmarshal([]byte(raw), &s) != nil || s.Spec.Replicas != 3 {
					t.Errorf("scale to 3 without RBAC, Ignore = %d %s; want it admitted", status, raw)
				}
			}
			if logs := in.logs.String(); !strings.Contains(logs, "failurePolicy") || !strings.Contains(logs, "403") {
				t.Errorf("injector did not log the failed lookup:\n%s", logs)
			}
		})
	}
}

func deref(p *int32) any {
	if p == nil {
		return "unset"
	}
	return *p
}
