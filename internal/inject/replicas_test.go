package inject

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/labels"
)

// The decision table of Replicas: only an opted-in template, injected
// here, on the embedded store, with more than one replica and without
// accepting per-pod limits is refused; the message names the object and
// every fix.
func TestReplicas(t *testing.T) {
	opted := map[string]string{AnnotationInject: "true"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{AnnotationInject: "true"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		ns       string
		replicas int32
		ann      map[string]string
		def      string // Options.PerPodLimits
		refused  bool
	}{
		{"3 replicas embedded by default", "messaging", 3, opted, "", true},
		{"2 replicas", "messaging", 2, opted, "", true},
		{"1 replica", "messaging", 1, opted, "", false},
		{"0 replicas", "messaging", 0, opted, "", false},
		{"store embedded named", "messaging", 3, with(AnnotationStore, "embedded"), "", true},
		{"store redis", "messaging", 3, with(AnnotationStore, "redis"), "", false},
		{"store typo: the pods are refused, not this", "messaging", 3, with(AnnotationStore, "memory"), "", false},
		{"accepted", "messaging", 3, with(AnnotationPerPodLimits, "accept"), "", false},
		{"refused explicitly", "messaging", 3, with(AnnotationPerPodLimits, "refuse"), "", true},
		{"default refuse", "messaging", 3, opted, PerPodRefuse, true},
		{"default accept", "messaging", 3, opted, PerPodAccept, false},
		{"default accept, template refuses", "messaging", 3, with(AnnotationPerPodLimits, "refuse"), PerPodAccept, true},
		{"opt-in typo is no opt-in", "messaging", 3, with(AnnotationPerPodLimits, "true"), "", true},
		{"unannotated", "messaging", 5, nil, "", false},
		{"opted out", "messaging", 5, map[string]string{AnnotationInject: "false"}, "", false},
		{"inject typo", "messaging", 5, map[string]string{AnnotationInject: "yes"}, "", false},
		{"kube-system", "kube-system", 3, opted, "", false},
		{"injector's namespace", "sendguard-system", 3, opted, "", false},
		{"already injected", "messaging", 3, with(AnnotationStatus, "1.2.3"), "", true},
		{"no namespace (a manifest)", "", 3, opted, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions("")
			opts.PerPodLimits = tc.def
			w := Workload{Kind: "Deployment", Namespace: tc.ns, Name: "sender", Replicas: tc.replicas, Field: "replicas", Annotations: tc.ann}
			err := Replicas(w, opts)
			if (err != nil) != tc.refused {
				t.Fatalf("Replicas(%+v) = %v, want refused %v", w, err, tc.refused)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrPerPodLimits) {
				t.Errorf("Replicas(%+v) = %v, want it to wrap ErrPerPodLimits", w, err)
			}
			for _, want := range []string{"Deployment " + strings.TrimPrefix(tc.ns+"/sender", "/"), "replicas " + strconv.Itoa(int(tc.replicas)), `sendguard.io/store: "redis"`, `sendguard.io/per-pod-limits: "accept"`, "1 replica"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Replicas(%+v) = %q, want it to mention %q", w, err, want)
				}
			}
			if v := tc.ann[AnnotationPerPodLimits]; v != "" && v != PerPodAccept && v != PerPodRefuse && !strings.Contains(err.Error(), `"`+v+`"`) {
				t.Errorf("Replicas(%+v) = %q, want it to name the bad value %q", w, err, v)
			}
		})
	}
}

// The rows of TestReplicas for the other kinds and the object selector: a
// DaemonSet (one pod per node) is refused whatever its count; a Job or
// CronJob by the pods it runs at once; a template whose labels the pod
// webhook's objectSelector does not select is never refused.
func TestReplicasKindsAndSelector(t *testing.T) {
	opted := map[string]string{AnnotationInject: "true"}
	sel, err := labels.Parse("team=messaging,tier notin (batch)")
	if err != nil {
		t.Fatal(err)
	}
	team := map[string]string{"team": "messaging", "app": "sender"}
	for _, tc := range []struct {
		name    string
		w       Workload
		sel     labels.Selector
		def     string
		refused bool
		want    []string // in the refusal
		not     []string // not in it
	}{
		{"DaemonSet", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: opted}, nil, "", true,
			[]string{"DaemonSet edge/relay: one pod per node", "once per node", "unknown at admission", `sendguard.io/store: "redis"`, `sendguard.io/per-pod-limits: "accept"`}, []string{"1 replica", "replicas"}},
		{"DaemonSet, 0 counted", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Replicas: 0, Annotations: opted}, nil, "", true, nil, nil},
		{"DaemonSet accepted", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: map[string]string{AnnotationInject: "true", AnnotationPerPodLimits: "accept"}}, nil, "", false, nil, nil},
		{"DaemonSet, accepted by default", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: opted}, nil, PerPodAccept, false, nil, nil},
		{"DaemonSet on Redis", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: map[string]string{AnnotationInject: "true", AnnotationStore: "redis"}}, nil, "", false, nil, nil},
		{"DaemonSet unannotated", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true}, nil, "", false, nil, nil},
		{"DaemonSet in kube-system", Workload{Kind: "DaemonSet", Namespace: "kube-system", Name: "relay", PerNode: true, Annotations: opted}, nil, "", false, nil, nil},
		{"Job parallelism 3", Workload{Kind: "Job", Namespace: "messaging", Name: "campaign", Replicas: 3, Field: "parallelism", Annotations: opted}, nil, "", true,
			[]string{"Job messaging/campaign: parallelism 3", "send 3 times its plan", "run 1 pod at a time (parallelism 1)"}, []string{"1 replica"}},
		{"Job parallelism 1", Workload{Kind: "Job", Namespace: "messaging", Name: "campaign", Replicas: 1, Field: "parallelism", Annotations: opted}, nil, "", false, nil, nil},
		{"CronJob completions 2", Workload{Kind: "CronJob", Namespace: "messaging", Name: "reminders", Replicas: 2, Field: "completions", Annotations: opted}, nil, "", true,
			[]string{"CronJob messaging/reminders: completions 2", "parallelism 1"}, nil},
		{"selector matches the template", Workload{Kind: "Deployment", Namespace: "messaging", Name: "sender", Replicas: 3, Field: "replicas", Annotations: opted, Labels: team}, sel, "", true, nil, nil},
		{"selector does not match the template", Workload{Kind: "Deployment", Namespace: "messaging", Name: "sender", Replicas: 3, Field: "replicas", Annotations: opted, Labels: map[string]string{"app": "sender"}}, sel, "", false, nil, nil},
		{"selector excludes the template", Workload{Kind: "Deployment", Namespace: "messaging", Name: "sender", Replicas: 3, Field: "replicas", Annotations: opted, Labels: map[string]string{"team": "messaging", "tier": "batch"}}, sel, "", false, nil, nil},
		{"selector, no template labels", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: opted}, sel, "", false, nil, nil},
		{"empty selector selects all", Workload{Kind: "DaemonSet", Namespace: "edge", Name: "relay", PerNode: true, Annotations: opted}, labels.Everything(), "", true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions("")
			opts.PerPodLimits, opts.ObjectSelector = tc.def, tc.sel
			err := Replicas(tc.w, opts)
			if (err != nil) != tc.refused {
				t.Fatalf("Replicas(%+v) = %v, want refused %v", tc.w, err, tc.refused)
			}
			if err != nil && !errors.Is(err, ErrPerPodLimits) {
				t.Errorf("Replicas(%+v) = %v, want it to wrap ErrPerPodLimits", tc.w, err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Replicas(%+v) = %q, want it to mention %q", tc.w, err, want)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(err.Error(), not) {
					t.Errorf("Replicas(%+v) = %q, want it not to mention %q", tc.w, err, not)
				}
			}
		})
	}
}

// workloadOf reads each kind as the API server defaults it.
func TestWorkloadOf(t *testing.T) {
	for _, tc := range []struct {
		name, kind, doc string
		want            Workload
	}{
		{"Deployment default", "Deployment", `{"metadata":{"name":"s","namespace":"m"},"spec":{"template":{"metadata":{"labels":{"a":"b"},"annotations":{"x":"y"}}}}}`,
			Workload{Kind: "Deployment", Namespace: "m", Name: "s", Replicas: 1, Field: "replicas", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"x": "y"}}},
		{"StatefulSet 4", "StatefulSet", `{"metadata":{"name":"s"},"spec":{"replicas":4}}`, Workload{Kind: "StatefulSet", Name: "s", Replicas: 4, Field: "replicas"}},
		{"DaemonSet", "DaemonSet", `{"metadata":{"name":"d"},"spec":{"template":{"metadata":{"annotations":{"x":"y"}}}}}`,
			Workload{Kind: "DaemonSet", Name: "d", Replicas: 1, PerNode: true, Annotations: map[string]string{"x": "y"}}},
		{"Job default", "Job", `{"metadata":{"name":"j"},"spec":{}}`, Workload{Kind: "Job", Name: "j", Replicas: 1, Field: "parallelism"}},
		{"Job parallelism 5", "Job", `{"metadata":{"name":"j"},"spec":{"parallelism":5,"completions":8}}`, Workload{Kind: "Job", Name: "j", Replicas: 5, Field: "parallelism"}},
		{"Job fewer completions", "Job", `{"metadata":{"name":"j"},"spec":{"parallelism":5,"completions":2}}`, Workload{Kind: "Job", Name: "j", Replicas: 2, Field: "completions"}},
		{"Job parallelism 0 (suspended by hand)", "Job", `{"metadata":{"name":"j"},"spec":{"parallelism":0}}`, Workload{Kind: "Job", Name: "j", Replicas: 0, Field: "parallelism"}},
		{"CronJob", "CronJob", `{"metadata":{"name":"c"},"spec":{"parallelism":9,"template":{"metadata":{"annotations":{"no":"no"}}},"jobTemplate":{"spec":{"parallelism":3,"template":{"metadata":{"labels":{"team":"t"},"annotations":{"x":"y"}}}}}}}`,
			Workload{Kind: "CronJob", Name: "c", Replicas: 3, Field: "parallelism", Labels: map[string]string{"team": "t"}, Annotations: map[string]string{"x": "y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o workloadObject
			if err := json.Unmarshal([]byte(tc.doc), &o); err != nil {
				t.Fatal(err)
			}
			if got := o.workloadOf(tc.kind); !cmp.Equal(got, tc.want, cmpopts.EquateEmpty()) {
				t.Errorf("workloadOf(%q) of %s = %+v, want %+v", tc.kind, tc.doc, got, tc.want)
			}
		})
	}
}

// The HPA and scale forms name what is refused and the field.
func TestReplicasMessageNamesTheRequest(t *testing.T) {
	w := Workload{Kind: "StatefulSet", Namespace: "مرسل", Name: "gönderici", Replicas: 10, Field: "maxReplicas", Annotations: map[string]string{AnnotationInject: "true"}, By: "HorizontalPodAutoscaler प्रेषक"}
	err := Replicas(w, Options{})
	want := "per-pod limits: HorizontalPodAutoscaler प्रेषक of StatefulSet مرسل/gönderici: maxReplicas 10 on sendguard's embedded store"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Replicas(%+v) = %v, want it to start %q", w, err, want)
	}
}
