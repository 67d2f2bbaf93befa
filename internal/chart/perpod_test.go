package chart

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestChartWorkloadWebhook: in injector mode the chart's
// MutatingWebhookConfiguration has, besides the pod webhook, the per-pod
// limits webhook: apps/v1 Deployments, StatefulSets, ReplicaSets and
// DaemonSets (CREATE, UPDATE), the scale subresource of the first three
// (UPDATE), autoscaling/v2 HPAs and batch/v1 Jobs and CronJobs (CREATE,
// UPDATE), served by the same injector, with the pods' failurePolicy,
// timeout and namespaceSelector, never reinvoked (it does not mutate). It
// has no objectSelector even when the pods' has one (the API server would
// match it against a workload's own labels, and a Scale has none): the
// injector gets it as --object-selector and matches pod templates. The
// injector runs with --per-pod-limits from injector.perPodLimits and
// mounts its token; a ClusterRole gives it get, and only get, on the three
// scalable kinds (DaemonSets, Jobs and CronJobs carry their template in
// the request), bound to its ServiceAccount, with either TLS setup.
func TestChartWorkloadWebhook(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		policy admissionregistrationv1.FailurePolicyType
		perPod string
		objSel string // the injector's --object-selector argument, "" none
	}{
		{"defaults", nil, admissionregistrationv1.Fail, "refuse", ""},
		{"ignore, accept, selectors", []string{"--set", "injector.failurePolicy=Ignore", "--set", "injector.perPodLimits=accept",
			"--set", "injector.objectSelector.matchLabels.team=messaging", "--set", "injector.namespaceSelector.matchLabels.env=prod"}, admissionregistrationv1.Ignore, "accept",
			`--object-selector={"matchLabels":{"team":"messaging"}}`},
		{"expressions", []string{"--set-json", `injector.objectSelector={"matchExpressions":[{"key":"tier","operator":"NotIn","values":["batch","bulk"]}]}`},
			admissionregistrationv1.Fail, "refuse", `--object-selector={"matchExpressions":[{"key":"tier","operator":"NotIn","values":["batch","bulk"]}]}`},
		{"cert-manager", []string{"--set", "injector.tls.certManager.enabled=true"}, admissionregistrationv1.Fail, "refuse", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			o := find(objs, "MutatingWebhookConfiguration", "")
			if o == nil {
				t.Fatalf("no MutatingWebhookConfiguration in %q", kinds(objs))
			}
			hooks := o.Typed.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks
			if len(hooks) != 2 || hooks[0].Name != "inject.sendguard.io" || hooks[1].Name != "workloads.sendguard.io" {
				t.Fatalf("webhooks %d, want inject.sendguard.io and workloads.sendguard.io", len(hooks))
			}
			pods, wl := hooks[0], hooks[1]
			type rule struct {
				ops       []admissionregistrationv1.OperationType
				group     string
				resources []string
			}
			var got []rule
			for _, r := range wl.Rules {
				if len(r.APIGroups) != 1 || r.Scope == nil || *r.Scope != admissionregistrationv1.NamespacedScope {
					t.Errorf("rule %+v: want one group, namespaced", r)
					continue
				}
				v := map[string]string{"apps": "v1", "autoscaling": "v2", "batch": "v1"}[r.APIGroups[0]]
				if !slices.Equal(r.APIVersions, []string{v}) {
					t.Errorf("rule %+v: versions %v, want [%s]", r, r.APIVersions, v)
				}
				got = append(got, rule{r.Operations, r.APIGroups[0], r.Resources})
			}
			create, update := admissionregistrationv1.Create, admissionregistrationv1.Update
			want := []rule{
				{[]admissionregistrationv1.OperationType{create, update}, "apps", []string{"deployments", "statefulsets", "replicasets", "daemonsets"}},
				{[]admissionregistrationv1.OperationType{update}, "apps", []string{"deployments/scale", "statefulsets/scale", "replicasets/scale"}},
				{[]admissionregistrationv1.OperationType{create, update}, "autoscaling", []string{"horizontalpodautoscalers"}},
				{[]admissionregistrationv1.OperationType{create, update}, "batch", []string{"jobs", "cronjobs"}},
			}
			if d := cmp.Diff(want, got, cmp.AllowUnexported(rule{})); d != "" {
				t.Errorf("workload webhook rules (-want +got):\n%s", d)
			}
			if *wl.FailurePolicy != tc.policy || *pods.FailurePolicy != tc.policy {
				t.Errorf("failurePolicy pods %s, workloads %s, want %s", *pods.FailurePolicy, *wl.FailurePolicy, tc.policy)
			}
			if *wl.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy || *wl.SideEffects != admissionregistrationv1.SideEffectClassNone ||
				*wl.MatchPolicy != admissionregistrationv1.Equivalent || *wl.TimeoutSeconds != *pods.TimeoutSeconds {
				t.Errorf("workload webhook: reinvocation %s, side effects %s, match %s, timeout %d; want Never, None, Equivalent, the pods' %d",
					*wl.ReinvocationPolicy, *wl.SideEffects, *wl.MatchPolicy, *wl.TimeoutSeconds, *pods.TimeoutSeconds)
			}
			if d := cmp.Diff(pods.ClientConfig, wl.ClientConfig); d != "" {
				t.Errorf("workload webhook calls elsewhere (-pods +workloads):\n%s", d)
			}
			if d := cmp.Diff(pods.NamespaceSelector, wl.NamespaceSelector); d != "" || pods.NamespaceSelector == nil {
				t.Errorf("namespaceSelector (-pods +workloads):\n%s", d)
			}
			if wl.ObjectSelector != nil {
				t.Errorf("workload webhook objectSelector %+v, want none (the injector matches pod templates)", wl.ObjectSelector)
			}
			if (pods.ObjectSelector != nil) != (tc.objSel != "") {
				t.Errorf("pod webhook objectSelector %+v, want one only when injector.objectSelector is set", pods.ObjectSelector)
			}

			dep := find(objs, "Deployment", release+"-sendguard-injector")
			if dep == nil {
				t.Fatal("no injector Deployment")
			}
			spec := dep.Typed.(*appsv1.Deployment).Spec.Template.Spec
			if !slices.Contains(spec.Containers[0].Args, "--per-pod-limits="+tc.perPod) {
				t.Errorf("injector args %q, want --per-pod-limits=%s", spec.Containers[0].Args, tc.perPod)
			}
			var objSel []string
			for _, a := range spec.Containers[0].Args {
				if strings.HasPrefix(a, "--object-selector") {
					objSel = append(objSel, a)
				}
			}
			if want := []string{tc.objSel}; (tc.objSel == "" && objSel != nil) || (tc.objSel != "" && !slices.Equal(objSel, want)) {
				t.Errorf("injector --object-selector args %q, want %q", objSel, tc.objSel)
			}

			cr := find(objs, "ClusterRole", release+"-sendguard-injector-"+ns+"-workloads")
			if cr == nil {
				t.Fatalf("no workloads ClusterRole in %q", kinds(objs))
			}
			wantRules := []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: []string{"get"}}}
			if d := cmp.Diff(wantRules, cr.Typed.(*rbacv1.ClusterRole).Rules); d != "" {
				t.Errorf("workloads ClusterRole rules (-want +got):\n%s", d)
			}
			crb := find(objs, "ClusterRoleBinding", cr.Name)
			if crb == nil {
				t.Fatal("no ClusterRoleBinding for the workloads ClusterRole")
			}
			b := crb.Typed.(*rbacv1.ClusterRoleBinding)
			wantSubj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: spec.ServiceAccountName, Namespace: ns}}
			if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != cr.Name || !cmp.Equal(b.Subjects, wantSubj) {
				t.Errorf("binding %+v to %+v, want the ClusterRole to %+v", b.RoleRef, b.Subjects, wantSubj)
			}
		})
	}
	t.Run("standalone has none", func(t *testing.T) {
		objs := render(t, "--set", "mode=standalone", "--set-file", "config="+configFile(t), "--set", "standalone.replicas=1")
		for _, o := range objs {
			if o.Kind == "MutatingWebhookConfiguration" || o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding" {
				t.Errorf("standalone renders %s %s", o.Kind, o.Name)
			}
		}
	})
}
