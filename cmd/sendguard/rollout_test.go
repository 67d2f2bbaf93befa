package main

// A Deployment through the real Deployment and ReplicaSet controllers
// (k8stest.ControllerManager) and the chart's webhook: the pods the
// controllers create are injected once, and so are those of a rollout
// restart.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/k8stest"
)

// restartedAt is the template annotation `kubectl rollout restart` sets.
const restartedAt = "kubectl.kubernetes.io/restartedAt"

// controllerWait bounds each wait for the controllers: the first one
// includes the controller-manager's start and informer sync.
const controllerWait = 90 * time.Second

// TestDeploymentRolloutInjectsOnce: a Deployment (2 replicas) of an
// annotated sender in a namespace labelled for injection, with the chart's
// webhook registered. The ReplicaSet controller's pods come back from the
// API server with both native sidecars, sendguard-http and sendguard-admin,
// the config and state volumes, each exactly once; after a rollout restart
// (the template annotation kubectl sets) the new ReplicaSet's pods are
// injected once too, not twice; the Deployment's and the ReplicaSets'
// templates stay as written. Nothing schedules or runs the pods: they stay
// Pending, which is all injection needs.
func TestDeploymentRolloutInjectsOnce(t *testing.T) {
	env := k8stest.ControllerManager(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-controller-manager log (tail):\n%s", tail(env.Log("kube-controller-manager"), 4000))
		}
	})
	in := startInjector(t)
	const ns = "ro-messaging"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled"})
	register(t, env, "ro-sendguard", in, "Fail", ns)

	// maxSurge 100%, maxUnavailable 0: the new ReplicaSet gets both
	// replicas at once even though no pod ever becomes available. Two
	// replicas on the embedded store: the template accepts per-pod limits
	// (TestKubeRefusesPerPodReplicas: without it, refused).
	p := annotatedPod("")
	p.Annotations[inject.AnnotationPerPodLimits] = inject.PerPodAccept
	replicas := int32(2)
	surge, unavailable := intstr.FromString("100%"), intstr.FromInt32(0)
	d := appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta("sender", nil),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sender"}},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			Template: corev1.PodTemplateSpec{ObjectMeta: objectMeta("", p.Annotations), Spec: p.Spec},
		},
	}
	d.Spec.Template.Labels = map[string]string{"app": "sender"}
	dpath := k8stest.Path("apps/v1", "deployments", ns, "sender")
	env.Must(t, http.StatusCreated, http.MethodPost, k8stest.Path("apps/v1", "deployments", ns, ""), d)

	first := waitReplicaSet(t, env, ns, "", 2)
	checkTemplateUntouched(t, "ReplicaSet "+first.rs.Name, &first.rs.Spec.Template)
	for i := range first.pods {
		checkInjected(t, &first.pods[i])
	}

	// kubectl rollout restart: a merge patch of the template's annotation.
	const when = "2026-11-27T12:00:00Z"
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAt, when)
	env.Must(t, http.StatusOK, http.MethodPatch, dpath, patch)

	second := waitReplicaSet(t, env, ns, when, 2)
	if second.rs.UID == first.rs.UID {
		t.Fatalf("rollout restart kept ReplicaSet %s", first.rs.Name)
	}
	checkTemplateUntouched(t, "ReplicaSet "+second.rs.Name, &second.rs.Spec.Template)
	for i := range second.pods {
		pod := &second.pods[i]
		checkInjected(t, pod)
		if got := pod.Annotations[restartedAt]; got != when {
			t.Errorf("pod %s: %s = %q, want %q (a pod of the restarted template)", pod.Name, restartedAt, got, when)
		}
	}
	// The first ReplicaSet's pods are still there (none became available,
	// so the rollout scales nothing down), unchanged.
	for _, pod := range podsOf(t, env, ns, &first.rs) {
		checkInjected(t, &pod)
	}

	var got appsv1.Deployment
	if status, err := env.Do(context.Background(), http.MethodGet, dpath, nil, &got); err != nil || status != http.StatusOK {
		t.Fatalf("get Deployment: %d %v", status, err)
	}
	checkTemplateUntouched(t, "Deployment sender", &got.Spec.Template)
	if a := got.Spec.Template.Annotations; len(a) != 3 || a[inject.AnnotationInject] != "true" || a[inject.AnnotationPerPodLimits] != inject.PerPodAccept || a[restartedAt] != when {
		t.Errorf("Deployment template annotations %v, want only %s, %s and %s", a, inject.AnnotationInject, inject.AnnotationPerPodLimits, restartedAt)
	}
}

// replicaSetPods is one ReplicaSet and the pods it owns.
type replicaSetPods struct {
	rs   appsv1.ReplicaSet
	pods []corev1.Pod
}

// waitReplicaSet waits until the namespace's sender Deployment has a
// ReplicaSet whose template carries restartedAt = when (none for ""),
// owning n pods, and returns them.
func waitReplicaSet(t *testing.T, env *k8stest.Env, ns, when string, n int) replicaSetPods {
	t.Helper()
	var found replicaSetPods
	k8stest.WaitWithin(t, controllerWait, fmt.Sprintf("a ReplicaSet of Deployment sender (restartedAt %q) with %d pods", when, n), func() bool {
		var list appsv1.ReplicaSetList
		path := k8stest.Path("apps/v1", "replicasets", ns, "") + "?labelSelector=" + url.QueryEscape("app=sender")
		if status, err := env.Do(context.Background(), http.MethodGet, path, nil, &list); err != nil || status != http.StatusOK {
			return false
		}
		for _, rs := range list.Items {
			if rs.Spec.Template.Annotations[restartedAt] != when || !ownedBy(rs.OwnerReferences, "Deployment", "sender") {
				continue
			}
			pods := podsOf(t, env, ns, &rs)
			if len(pods) != n {
				return false
			}
			found = replicaSetPods{rs: rs, pods: pods}
			return true
		}
		return false
	})
	return found
}

// podsOf returns the pods rs owns (by controller reference).
func podsOf(t *testing.T, env *k8stest.Env, ns string, rs *appsv1.ReplicaSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	path := k8stest.Path("v1", "pods", ns, "") + "?labelSelector=" + url.QueryEscape("app=sender")
	if status, err := env.Do(context.Background(), http.MethodGet, path, nil, &list); err != nil || status != http.StatusOK {
		t.Fatalf("list pods: %d %v", status, err)
	}
	var pods []corev1.Pod
	for _, pod := range list.Items {
		for _, o := range pod.OwnerReferences {
			if o.UID == rs.UID {
				pods = append(pods, pod)
			}
		}
	}
	return pods
}

func ownedBy(refs []metav1.OwnerReference, kind, name string) bool {
	for _, o := range refs {
		if o.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}

// checkTemplateUntouched checks that a pod template was not injected: the
// webhook mutates pods only.
func checkTemplateUntouched(t *testing.T, what string, tmpl *corev1.PodTemplateSpec) {
	t.Helper()
	s := tmpl.Spec
	if len(s.InitContainers) != 0 || len(s.Containers) != 1 || s.Containers[0].Name != "app" || len(s.Volumes) != 0 || tmpl.Annotations[inject.AnnotationStatus] != "" {
		t.Errorf("%s template: init %v, containers %v, %d volumes, annotations %v; want it as written",
			what, names(s.InitContainers), names(s.Containers), len(s.Volumes), tmpl.Annotations)
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
