package inject

import (
	"errors"
	"strconv"
	"strings"
	"testing"
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

// The HPA and scale forms name what is refused and the field.
func TestReplicasMessageNamesTheRequest(t *testing.T) {
	w := Workload{Kind: "StatefulSet", Namespace: "مرسل", Name: "gönderici", Replicas: 10, Field: "maxReplicas", Annotations: map[string]string{AnnotationInject: "true"}, By: "HorizontalPodAutoscaler प्रेषक"}
	err := Replicas(w, Options{})
	want := "per-pod limits: HorizontalPodAutoscaler प्रेषक of StatefulSet مرسل/gönderici: maxReplicas 10 on sendguard's embedded store"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Replicas(%+v) = %v, want it to start %q", w, err, want)
	}
}
