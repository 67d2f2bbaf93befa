package main

// Per-pod limits against a real API server, continued: DaemonSets, Jobs
// and CronJobs, and the chart's injector.objectSelector.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/k8stest"
)

// refusedFor checks a 403 from the workload webhook starting with want and
// naming both general fixes.
func refusedFor(t *testing.T, what string, status int, raw, want string) {
	t.Helper()
	var st metav1.Status
	json.Unmarshal([]byte(raw), &st)
	m := st.Message
	if status != http.StatusForbidden || st.Code != http.StatusForbidden || !strings.HasPrefix(m, perPodMessage+want) ||
		!strings.Contains(m, `sendguard.io/per-pod-limits: "accept"`) || !strings.Contains(m, `sendguard.io/store: "redis"`) {
		t.Errorf("%s = %d %s, want 403 %q naming the fixes", what, status, raw, perPodMessage+want)
	}
}

// senderTemplate is the pod template of an annotated sender, labelled
// app=name and labels, with extra annotations; restartPolicy is set for a
// Job's.
func senderTemplate(name string, ann, labels map[string]string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	p := annotatedPod("")
	for k, v := range ann {
		p.Annotations[k] = v
	}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: objectMeta("", p.Annotations), Spec: p.Spec}
	tmpl.Labels = map[string]string{"app": name}
	for k, v := range labels {
		tmpl.Labels[k] = v
	}
	tmpl.Spec.RestartPolicy = restart
	return tmpl
}

func daemonSet(name string, ann, labels map[string]string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{TypeMeta: typeMeta("apps/v1", "DaemonSet"), ObjectMeta: objectMeta(name, nil),
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: senderTemplate(name, ann, labels, "")}}
}

func job(name string, parallelism int32, completions *int32, ann map[string]string) *batchv1.Job {
	return &batchv1.Job{TypeMeta: typeMeta("batch/v1", "Job"), ObjectMeta: objectMeta(name, nil),
		Spec: batchv1.JobSpec{Parallelism: &parallelism, Completions: completions, Template: senderTemplate(name, ann, nil, corev1.RestartPolicyNever)}}
}

func cronJob(name string, parallelism int32, ann map[string]string) *batchv1.CronJob {
	return &batchv1.CronJob{TypeMeta: typeMeta("batch/v1", "CronJob"), ObjectMeta: objectMeta(name, nil),
		Spec: batchv1.CronJobSpec{Schedule: "0 9 1 1 *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: &parallelism,
			Template: senderTemplate(name, ann, nil, corev1.RestartPolicyOnFailure)}}}}
}

// TestKubeRefusesPerNodeAndJobs: with the chart's webhook configuration
// pointed at `inject serve`, on the embedded store, an annotated DaemonSet
// is refused (one pod per node, whatever the node count) unless it
// accepts per-pod limits or uses Redis, and dropping the acceptance later
// is refused; a Job with parallelism 3 is refused, with parallelism 1 or
// a single completion admitted, and raising the parallelism of an admitted
// one is refused; a CronJob whose jobTemplate has parallelism 2 is
// refused, accepted it is admitted; unannotated ones are admitted.
func TestKubeRefusesPerNodeAndJobs(t *testing.T) {
	env := k8stest.Start(t)
	const ns = "pp-kinds"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled", "sendguard.io/test": ns})
	in := startInjector(t)
	register(t, env, ns, in, "Fail", ns, "injector.namespaceSelector.matchLabels.sendguard\\.io/test="+ns)
	daemonsets := k8stest.Path("apps/v1", "daemonsets", ns, "")
	jobs := k8stest.Path("batch/v1", "jobs", ns, "")
	cronjobs := k8stest.Path("batch/v1", "cronjobs", ns, "")
	accept := map[string]string{inject.AnnotationPerPodLimits: inject.PerPodAccept}
	redis := map[string]string{inject.AnnotationStore: "redis"}
	created := func(what string, status int, raw string) {
		t.Helper()
		if status != http.StatusCreated {
			t.Errorf("%s = %d %s, want 201", what, status, raw)
		}
	}

	t.Run("DaemonSet", func(t *testing.T) {
		status, raw := send(t, env, http.MethodPost, daemonsets, daemonSet("relay", nil, nil))
		refusedFor(t, "create DaemonSet relay", status, raw, "DaemonSet "+ns+"/relay: one pod per node on sendguard's embedded store")
		if !strings.Contains(raw, "unknown at admission") {
			t.Errorf("DaemonSet refusal does not say why a DaemonSet is always refused: %s", raw)
		}
		if status, _ := send(t, env, http.MethodGet, daemonsets+"/relay", nil); status != http.StatusNotFound {
			t.Errorf("refused DaemonSet stored: GET = %d", status)
		}
		status, raw = send(t, env, http.MethodPost, daemonsets, daemonSet("relay-accepted", accept, nil))
		created("create DaemonSet relay-accepted", status, raw)
		status, raw = send(t, env, http.MethodPost, daemonsets, daemonSet("relay-shared", redis, nil))
		created("create DaemonSet relay-shared (Redis)", status, raw)
		d := daemonSet("agent", nil, nil)
		d.Spec.Template.Annotations = nil
		status, raw = send(t, env, http.MethodPost, daemonsets, d)
		created("create DaemonSet agent (unannotated)", status, raw)

		status, raw = send(t, env, http.MethodPatch, daemonsets+"/relay-accepted",
			[]byte(`{"spec":{"template":{"metadata":{"annotations":{"sendguard.io/per-pod-limits":null}}}}}`))
		refusedFor(t, "drop the acceptance of DaemonSet relay-accepted", status, raw, "DaemonSet "+ns+"/relay-accepted: one pod per node")
		if status, raw := send(t, env, http.MethodPatch, daemonsets+"/relay-accepted", []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)); status != http.StatusOK {
			t.Errorf("label DaemonSet relay-accepted = %d %s", status, raw)
		}
	})

	t.Run("Job", func(t *testing.T) {
		status, raw := send(t, env, http.MethodPost, jobs, job("campaign3", 3, nil, nil))
		refusedFor(t, "create Job campaign3 (parallelism 3)", status, raw, "Job "+ns+"/campaign3: parallelism 3 on sendguard's embedded store")
		one := int32(1)
		status, raw = send(t, env, http.MethodPost, jobs, job("campaign-single", 3, &one, nil))
		created("create Job campaign-single (parallelism 3, 1 completion)", status, raw)
		status, raw = send(t, env, http.MethodPost, jobs, job("campaign-accepted", 3, nil, accept))
		created("create Job campaign-accepted (parallelism 3, accepted)", status, raw)
		status, raw = send(t, env, http.MethodPost, jobs, job("campaign", 1, nil, nil))
		created("create Job campaign (parallelism 1)", status, raw)
		status, raw = send(t, env, http.MethodPatch, jobs+"/campaign", []byte(`{"spec":{"parallelism":3}}`))
		refusedFor(t, "patch Job campaign parallelism 3", status, raw, "Job "+ns+"/campaign: parallelism 3")
	})

	t.Run("CronJob", func(t *testing.T) {
		status, raw := send(t, env, http.MethodPost, cronjobs, cronJob("reminders2", 2, nil))
		refusedFor(t, "create CronJob reminders2 (parallelism 2)", status, raw, "CronJob "+ns+"/reminders2: parallelism 2 on sendguard's embedded store")
		status, raw = send(t, env, http.MethodPost, cronjobs, cronJob("reminders-accepted", 2, accept))
		created("create CronJob reminders-accepted", status, raw)
		status, raw = send(t, env, http.MethodPost, cronjobs, cronJob("reminders", 1, nil))
		created("create CronJob reminders (parallelism 1)", status, raw)
	})
}

// chartInjectorArgs returns the injector container's arguments as the
// chart renders them with set.
func chartInjectorArgs(t *testing.T, set ...string) []string {
	t.Helper()
	out := helmTemplate(t, "sg", injectorNamespace, append([]string{"--show-only=templates/injector-deployment.yaml"}, set...)...)
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(out), &d); err != nil || len(d.Spec.Template.Spec.Containers) == 0 {
		t.Fatalf("chart's injector Deployment: %v\n%s", err, out)
	}
	return d.Spec.Template.Spec.Containers[0].Args
}

// TestKubePerPodObjectSelector: with injector.objectSelector set (team=
// messaging), the chart's workload webhook is still called for scales and
// for workloads whatever their own labels, and the injector (run with the
// chart's --object-selector argument) judges them by their pod template's
// labels, as the pod webhook's objectSelector judges their pods: a
// Deployment whose template is team=messaging cannot be scaled to 3
// (kubectl scale, its spec, an HPA), while one labelled team=messaging
// only on itself, whose pods are never injected, runs 3 replicas; a
// DaemonSet likewise.
func TestKubePerPodObjectSelector(t *testing.T) {
	env := k8stest.Start(t)
	const ns = "pp-selector"
	env.Namespace(t, ns, map[string]string{"sendguard.io/injection": "enabled", "sendguard.io/test": ns})
	chartWorkloadRBAC(t, env, "pps-", ns)
	set := []string{"injector.namespaceSelector.matchLabels.sendguard\\.io/test=" + ns, "injector.objectSelector.matchLabels.team=messaging"}
	var selArg []string
	for _, a := range chartInjectorArgs(t, set...) {
		if strings.HasPrefix(a, "--object-selector=") {
			selArg = append(selArg, a)
		}
	}
	if len(selArg) != 1 {
		t.Fatalf("chart's injector --object-selector arguments %q, want one", selArg)
	}
	in := startInjector(t, append(kubeFlags(t, env, "injector"), selArg...)...)
	probe := annotatedPod("probe")
	probe.Labels = map[string]string{"team": "messaging"}
	registerProbe(t, env, ns, in, "Fail", ns, probe, set...)
	deployments := k8stest.Path("apps/v1", "deployments", ns, "")
	team := map[string]string{"team": "messaging"}

	// A pod the objectSelector skips is not injected: the premise.
	if pod, status, raw := createPod(t, env, ns, annotatedPod("unlabelled"), true); status != http.StatusCreated || count(pod, inject.SendguardContainer) != 0 {
		t.Fatalf("dry-run unlabelled annotated pod = %d %s, want admitted uninjected", status, raw)
	}

	t.Run("a selected template is judged, scale included", func(t *testing.T) {
		d := workloadOf("Deployment", "sender", 1, nil).(*appsv1.Deployment)
		d.Spec.Template.Labels["team"] = "messaging"
		if status, raw := send(t, env, http.MethodPost, deployments, d); status != http.StatusCreated {
			t.Fatalf("create Deployment sender (1 replica, template team=messaging) = %d %s", status, raw)
		}
		status, raw := send(t, env, http.MethodPatch, deployments+"/sender/scale", []byte(`{"spec":{"replicas":3}}`))
		refusedWith(t, "kubectl scale --replicas 3 (Deployment unlabelled, template team=messaging)", status, raw, "scale of Deployment "+ns+"/sender: replicas 3")
		status, raw = send(t, env, http.MethodPatch, deployments+"/sender", []byte(`{"spec":{"replicas":3}}`))
		refusedWith(t, "patch spec.replicas 3", status, raw, "Deployment "+ns+"/sender: replicas 3")
		status, raw = send(t, env, http.MethodPost, k8stest.Path("autoscaling/v2", "horizontalpodautoscalers", ns, ""), hpa("sender", "Deployment", "sender", 5))
		refusedWith(t, "HPA maxReplicas 5 (HPA unlabelled)", status, raw, "HorizontalPodAutoscaler sender of Deployment "+ns+"/sender: maxReplicas 5")
		d3 := workloadOf("Deployment", "sender3", 3, nil).(*appsv1.Deployment)
		d3.Spec.Template.Labels["team"] = "messaging"
		status, raw = send(t, env, http.MethodPost, deployments, d3)
		refusedWith(t, "create Deployment sender3 (3 replicas, template team=messaging)", status, raw, "Deployment "+ns+"/sender3: replicas 3")
	})

	t.Run("a template the pods' objectSelector skips is not refused", func(t *testing.T) {
		d := workloadOf("Deployment", "labelled-only", 3, nil).(*appsv1.Deployment)
		d.Labels = map[string]string{"team": "messaging"}
		if status, raw := send(t, env, http.MethodPost, deployments, d); status != http.StatusCreated {
			t.Errorf("create Deployment labelled-only (3 replicas, labelled team=messaging, template not) = %d %s", status, raw)
		}
		if status, raw := send(t, env, http.MethodPatch, deployments+"/labelled-only/scale", []byte(`{"spec":{"replicas":4}}`)); status != http.StatusOK {
			t.Errorf("scale labelled-only to 4 = %d %s", status, raw)
		}
	})

	t.Run("DaemonSet", func(t *testing.T) {
		daemonsets := k8stest.Path("apps/v1", "daemonsets", ns, "")
		status, raw := send(t, env, http.MethodPost, daemonsets, daemonSet("relay", nil, team))
		refusedFor(t, "create DaemonSet relay (template team=messaging)", status, raw, "DaemonSet "+ns+"/relay: one pod per node")
		if status, raw := send(t, env, http.MethodPost, daemonsets, daemonSet("relay-other", nil, nil)); status != http.StatusCreated {
			t.Errorf("create DaemonSet relay-other (template not selected) = %d %s", status, raw)
		}
	})
}
