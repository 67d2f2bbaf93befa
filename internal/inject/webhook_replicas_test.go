package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// objects is a Getter over a fixed set of objects by REST path; err, when
// set, is every answer. The API server itself answers in cmd/sendguard's
// tests; this one lets the table below cover every branch.
type objects struct {
	byPath map[string]any
	err    error
	mu     sync.Mutex
	asked  []string
}

func (o *objects) Get(_ context.Context, path string, out any) error {
	o.mu.Lock()
	o.asked = append(o.asked, path)
	o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	v, ok := o.byPath[path]
	if !ok {
		return fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// workloadJSON is a Deployment, StatefulSet or ReplicaSet as the API
// server sends it (defaulted: replicas set).
func workloadJSON(kind, name string, replicas int32, ann map[string]string) map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": "messaging", "labels": map[string]any{"app": name}},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}, "annotations": ann},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "example.com/sender:1.0", "ports": []any{map[string]any{"containerPort": 8080}}}}},
			},
		},
	}
}

func scaleJSON(name string, replicas int32) map[string]any {
	return map[string]any{"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": map[string]any{"name": name, "namespace": "messaging"}, "spec": map[string]any{"replicas": replicas}}
}

func hpaJSON(name, kind, target string, max int32) map[string]any {
	return map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": map[string]any{"name": name, "namespace": "messaging"},
		"spec": map[string]any{"scaleTargetRef": map[string]any{"apiVersion": "apps/v1", "kind": kind, "name": target}, "minReplicas": 1, "maxReplicas": max}}
}

// admission wraps a request into an AdmissionReview body.
func admission(t *testing.T, resource metav1.GroupVersionResource, sub string, op admissionv1.Operation, name string, obj, old any) []byte {
	t.Helper()
	req := map[string]any{
		"uid": "0d4b3c2a-1f00-4e6b-9d7e-5c0a1b2c3d4e", "resource": resource, "subResource": sub, "operation": op,
		"namespace": "messaging", "name": name, "userInfo": map[string]any{"username": "alice"},
	}
	if obj != nil {
		req["object"] = obj
	}
	if old != nil {
		req["oldObject"] = old
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	deployments  = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulsets = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	replicasets  = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
)

// TestWebhookRefusesPerPodReplicas: the webhook's decision for workloads,
// their scale subresource and HPAs, never a patch.
func TestWebhookRefusesPerPodReplicas(t *testing.T) {
	opted := map[string]string{AnnotationInject: "true"}
	accept := map[string]string{AnnotationInject: "true", AnnotationPerPodLimits: "accept"}
	redis := map[string]string{AnnotationInject: "true", AnnotationStore: "redis"}
	stored := &objects{byPath: map[string]any{
		"/apis/apps/v1/namespaces/messaging/deployments/sender":  workloadJSON("Deployment", "sender", 1, opted),
		"/apis/apps/v1/namespaces/messaging/deployments/shared":  workloadJSON("Deployment", "shared", 1, redis),
		"/apis/apps/v1/namespaces/messaging/deployments/worker":  workloadJSON("Deployment", "worker", 1, nil),
		"/apis/apps/v1/namespaces/messaging/deployments/legacy":  workloadJSON("Deployment", "legacy", 4, opted),
		"/apis/apps/v1/namespaces/messaging/statefulsets/sender": workloadJSON("StatefulSet", "sender", 1, opted),
	}}
	owned := workloadJSON("ReplicaSet", "sender-7d9c6b8f5d", 3, opted)
	owned["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "sender", "uid": "u", "controller": true}}
	deleting := workloadJSON("Deployment", "sender", 3, opted)
	deleting["metadata"].(map[string]any)["deletionTimestamp"] = "2026-11-27T12:00:00Z"

	for _, tc := range []struct {
		name string
		body func(t *testing.T) []byte
		get  Getter
		want string // "" allowed; "500" an HTTP 500; else the refusal's text
	}{
		{"Deployment 3 replicas", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", workloadJSON("Deployment", "sender", 3, opted), nil)
		}, nil, "Deployment messaging/sender: replicas 3"},
		{"Deployment 1 replica", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", workloadJSON("Deployment", "sender", 1, opted), nil)
		}, nil, ""},
		{"Deployment 3 replicas accepted", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", workloadJSON("Deployment", "sender", 3, accept), nil)
		}, nil, ""},
		{"Deployment 3 replicas on Redis", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", workloadJSON("Deployment", "sender", 3, redis), nil)
		}, nil, ""},
		{"unannotated Deployment 5 replicas", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "worker", workloadJSON("Deployment", "worker", 5, nil), nil)
		}, nil, ""},
		{"StatefulSet 2 replicas", func(t *testing.T) []byte {
			return admission(t, statefulsets, "", admissionv1.Create, "sender", workloadJSON("StatefulSet", "sender", 2, opted), nil)
		}, nil, "StatefulSet messaging/sender: replicas 2"},
		{"ReplicaSet 3 replicas", func(t *testing.T) []byte {
			return admission(t, replicasets, "", admissionv1.Create, "sender", workloadJSON("ReplicaSet", "sender", 3, opted), nil)
		}, nil, "ReplicaSet messaging/sender: replicas 3"},
		{"ReplicaSet of a Deployment", func(t *testing.T) []byte {
			return admission(t, replicasets, "", admissionv1.Create, "sender-7d9c6b8f5d", owned, nil)
		}, nil, ""},
		{"update 1 to 3", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "sender", workloadJSON("Deployment", "sender", 3, opted), workloadJSON("Deployment", "sender", 1, opted))
		}, nil, "replicas 3"},
		{"update dropping the opt-in", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "sender", workloadJSON("Deployment", "sender", 3, opted), workloadJSON("Deployment", "sender", 3, accept))
		}, nil, "replicas 3"},
		{"update of a refusable one, same replicas", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "legacy", workloadJSON("Deployment", "legacy", 4, opted), workloadJSON("Deployment", "legacy", 4, opted))
		}, nil, ""},
		{"update of a refusable one, fewer replicas", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "legacy", workloadJSON("Deployment", "legacy", 2, opted), workloadJSON("Deployment", "legacy", 4, opted))
		}, nil, ""},
		{"update of a refusable one, more replicas", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "legacy", workloadJSON("Deployment", "legacy", 5, opted), workloadJSON("Deployment", "legacy", 4, opted))
		}, nil, "replicas 5"},
		{"being deleted", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Update, "sender", deleting, workloadJSON("Deployment", "sender", 3, opted))
		}, nil, ""},
		{"status subresource", func(t *testing.T) []byte {
			return admission(t, deployments, "status", admissionv1.Update, "sender", workloadJSON("Deployment", "sender", 3, opted), nil)
		}, nil, ""},
		{"delete", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Delete, "sender", nil, workloadJSON("Deployment", "sender", 3, opted))
		}, nil, ""},
		{"no object", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", nil, nil)
		}, nil, "request carries no Deployment"},
		{"object not a Deployment", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "sender", map[string]any{"spec": "nonsense"}, nil)
		}, nil, "decode Deployment"},

		{"scale to 3", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 3), scaleJSON("sender", 1))
		}, stored, "scale of Deployment messaging/sender: replicas 3"},
		{"scale a StatefulSet to 2", func(t *testing.T) []byte {
			return admission(t, statefulsets, "scale", admissionv1.Update, "sender", scaleJSON("sender", 2), scaleJSON("sender", 1))
		}, stored, "scale of StatefulSet messaging/sender: replicas 2"},
		{"scale to 1 reads nothing", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 1), scaleJSON("sender", 3))
		}, nil, ""},
		{"scale on Redis", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "shared", scaleJSON("shared", 3), scaleJSON("shared", 1))
		}, stored, ""},
		{"scale unannotated", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "worker", scaleJSON("worker", 5), scaleJSON("worker", 1))
		}, stored, ""},
		{"scale a refusable one down", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "legacy", scaleJSON("legacy", 3), scaleJSON("legacy", 4))
		}, stored, ""},
		{"scale a refusable one up", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "legacy", scaleJSON("legacy", 6), scaleJSON("legacy", 4))
		}, stored, "replicas 6"},
		{"scale without oldObject", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 3), nil)
		}, stored, "replicas 3"},
		{"scale of a gone workload", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "gone", scaleJSON("gone", 3), nil)
		}, stored, ""},
		{"scale, lookup fails", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 3), nil)
		}, &objects{err: errors.New("API server answered 403: forbidden")}, "500"},
		{"scale, no API access", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 3), nil)
		}, nil, "500"},
		{"scale, not a Scale", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", map[string]any{"spec": map[string]any{"replicas": "many"}}, nil)
		}, stored, "decode Scale"},

		{"HPA to 5", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "sender", hpaJSON("sender", "Deployment", "sender", 5), nil)
		}, stored, "HorizontalPodAutoscaler sender of Deployment messaging/sender: maxReplicas 5"},
		{"HPA max 1", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "sender", hpaJSON("sender", "Deployment", "sender", 1), nil)
		}, nil, ""},
		{"HPA on Redis", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "shared", hpaJSON("shared", "Deployment", "shared", 5), nil)
		}, stored, ""},
		{"HPA on another kind", func(t *testing.T) []byte {
			h := hpaJSON("rollout", "Rollout", "sender", 5)
			h["spec"].(map[string]any)["scaleTargetRef"].(map[string]any)["apiVersion"] = "argoproj.io/v1alpha1"
			return admission(t, hpaResource, "", admissionv1.Create, "rollout", h, nil)
		}, nil, ""},
		{"HPA before its Deployment", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "gone", hpaJSON("gone", "Deployment", "gone", 5), nil)
		}, stored, ""},
		{"HPA update keeping max of a refusable one", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Update, "sender", hpaJSON("sender", "Deployment", "sender", 5), hpaJSON("sender", "Deployment", "sender", 5))
		}, stored, ""},
		{"HPA update raising max", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Update, "sender", hpaJSON("sender", "Deployment", "sender", 6), hpaJSON("sender", "Deployment", "sender", 5))
		}, stored, "maxReplicas 6"},
		{"HPA update retargeted", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Update, "sender", hpaJSON("sender", "StatefulSet", "sender", 5), hpaJSON("sender", "Deployment", "shared", 5))
		}, stored, "of StatefulSet messaging/sender: maxReplicas 5"},
		{"HPA, lookup fails", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "sender", hpaJSON("sender", "Deployment", "sender", 5), nil)
		}, &objects{err: errors.New("connection refused")}, "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Webhook(testOptions(""), tc.get, quiet())
			rec, resp := post(t, h, tc.body(t))
			if tc.want == "500" {
				if rec.Code != http.StatusInternalServerError || !strings.HasPrefix(rec.Body.String(), "sendguard: ") {
					t.Errorf("response = %d %s, want 500 (the API server applies failurePolicy)", rec.Code, rec.Body)
				}
				return
			}
			checkWorkloadReview(t, rec, resp, tc.want)
		})
	}
	for _, p := range stored.asked {
		if !strings.HasPrefix(p, "/apis/apps/v1/namespaces/messaging/") {
			t.Errorf("the webhook read %s", p)
		}
	}
}

// Workload requests from many goroutines, with multilingual names, each
// get their own decision.
func TestWebhookReplicasConcurrent(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	names := []string{"مرسل", "प्रेषक", "gönderici", "sender-😀", "e\u0301metteur"}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			name := names[i%len(names)]
			replicas := int32(1 + i%3)
			body := admission(t, deployments, "", admissionv1.Create, name, workloadJSON("Deployment", name, replicas, map[string]string{AnnotationInject: "true"}), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
				return
			}
			if out.Response.Allowed != (replicas == 1) {
				t.Errorf("%s with %d replicas: allowed %v", name, replicas, out.Response.Allowed)
			}
			if !out.Response.Allowed && !strings.Contains(out.Response.Result.Message, "Deployment messaging/"+name+": replicas") {
				t.Errorf("%s: refusal %q does not name it", name, out.Response.Result.Message)
			}
		})
	}
	wg.Wait()
}

var (
	daemonsets = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	jobs       = metav1.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	cronjobs   = metav1.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
)

// daemonSetJSON is a DaemonSet of annotated template pods labelled app=name
// and labels.
func daemonSetJSON(name string, ann, labels map[string]string) map[string]any {
	l := map[string]any{"app": name}
	for k, v := range labels {
		l[k] = v
	}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": name, "namespace": "messaging"},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{"metadata": map[string]any{"labels": l, "annotations": ann}, "spec": map[string]any{}},
		},
	}
}

// jobSpecJSON is a Job's spec; parallelism or completions 0 leave them out.
func jobSpecJSON(parallelism, completions int32, ann map[string]string) map[string]any {
	s := map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": ann}, "spec": map[string]any{"restartPolicy": "Never"}}}
	if parallelism != 0 {
		s["parallelism"] = parallelism
	}
	if completions != 0 {
		s["completions"] = completions
	}
	return s
}

func jobJSON(name string, parallelism, completions int32, ann map[string]string) map[string]any {
	return map[string]any{"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": name, "namespace": "messaging"}, "spec": jobSpecJSON(parallelism, completions, ann)}
}

func cronJobJSON(name string, parallelism, completions int32, ann map[string]string) map[string]any {
	return map[string]any{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": map[string]any{"name": name, "namespace": "messaging"},
		"spec": map[string]any{"schedule": "0 9 * * *", "jobTemplate": map[string]any{"spec": jobSpecJSON(parallelism, completions, ann)}}}
}

// TestWebhookRefusesPerNodeAndJobs: DaemonSets (whatever their node
// count), Jobs and CronJobs running more than one pod at once, with the
// same decision as the apps workloads; and, with the pod webhook's
// objectSelector, a workload (its scale, an HPA on it) is judged by its
// pod template's labels, not its own.
func TestWebhookRefusesPerNodeAndJobs(t *testing.T) {
	opted := map[string]string{AnnotationInject: "true"}
	accept := map[string]string{AnnotationInject: "true", AnnotationPerPodLimits: "accept"}
	redis := map[string]string{AnnotationInject: "true", AnnotationStore: "redis"}
	ownedJob := jobJSON("reminders-29400000", 3, 0, opted)
	ownedJob["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "batch/v1", "kind": "CronJob", "name": "reminders", "uid": "u", "controller": true}}
	// A Deployment labelled team=messaging whose template is not, and one
	// whose template is while the Deployment is not.
	ownLabels := workloadJSON("Deployment", "owner-labelled", 3, opted)
	ownLabels["metadata"].(map[string]any)["labels"] = map[string]any{"team": "messaging"}
	tplLabels := workloadJSON("Deployment", "template-labelled", 3, opted)
	tplLabels["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"app": "template-labelled", "team": "messaging"}
	tplLabels1 := workloadJSON("Deployment", "template-labelled", 1, opted)
	tplLabels1["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"app": "template-labelled", "team": "messaging"}
	stored := &objects{byPath: map[string]any{
		"/apis/apps/v1/namespaces/messaging/deployments/template-labelled": tplLabels1,
		"/apis/apps/v1/namespaces/messaging/deployments/sender":            workloadJSON("Deployment", "sender", 1, opted),
	}}
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "messaging"}})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		body     func(t *testing.T) []byte
		selected bool // with the objectSelector team=messaging
		want     string
	}{
		{"DaemonSet", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", opted, nil), nil)
		}, false, "DaemonSet messaging/relay: one pod per node on sendguard's embedded store"},
		{"DaemonSet accepted", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", accept, nil), nil)
		}, false, ""},
		{"DaemonSet on Redis", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", redis, nil), nil)
		}, false, ""},
		{"DaemonSet unannotated", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", nil, nil), nil)
		}, false, ""},
		{"DaemonSet update dropping acceptance", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Update, "relay", daemonSetJSON("relay", opted, nil), daemonSetJSON("relay", accept, nil))
		}, false, "DaemonSet messaging/relay: one pod per node"},
		{"DaemonSet update of a refusable one", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Update, "relay", daemonSetJSON("relay", opted, map[string]string{"v": "2"}), daemonSetJSON("relay", opted, nil))
		}, false, ""},
		{"Job parallelism 3", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "campaign", jobJSON("campaign", 3, 0, opted), nil)
		}, false, "Job messaging/campaign: parallelism 3"},
		{"Job parallelism 3, 1 completion", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "campaign", jobJSON("campaign", 3, 1, opted), nil)
		}, false, ""},
		{"Job parallelism 4, 2 completions", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "campaign", jobJSON("campaign", 4, 2, opted), nil)
		}, false, "Job messaging/campaign: completions 2"},
		{"Job default parallelism", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "campaign", jobJSON("campaign", 0, 5, opted), nil)
		}, false, ""},
		{"Job accepted", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "campaign", jobJSON("campaign", 3, 0, accept), nil)
		}, false, ""},
		{"Job update raising parallelism", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Update, "campaign", jobJSON("campaign", 3, 0, opted), jobJSON("campaign", 1, 0, opted))
		}, false, "parallelism 3"},
		{"Job update of a refusable one, lower", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Update, "campaign", jobJSON("campaign", 2, 0, opted), jobJSON("campaign", 3, 0, opted))
		}, false, ""},
		{"Job of a CronJob", func(t *testing.T) []byte {
			return admission(t, jobs, "", admissionv1.Create, "reminders-29400000", ownedJob, nil)
		}, false, ""},
		{"Job status", func(t *testing.T) []byte {
			return admission(t, jobs, "status", admissionv1.Update, "campaign", jobJSON("campaign", 3, 0, opted), nil)
		}, false, ""},
		{"CronJob parallelism 2", func(t *testing.T) []byte {
			return admission(t, cronjobs, "", admissionv1.Create, "reminders", cronJobJSON("reminders", 2, 0, opted), nil)
		}, false, "CronJob messaging/reminders: parallelism 2"},
		{"CronJob parallelism 1", func(t *testing.T) []byte {
			return admission(t, cronjobs, "", admissionv1.Create, "reminders", cronJobJSON("reminders", 1, 0, opted), nil)
		}, false, ""},
		{"CronJob on Redis", func(t *testing.T) []byte {
			return admission(t, cronjobs, "", admissionv1.Create, "reminders", cronJobJSON("reminders", 2, 0, redis), nil)
		}, false, ""},
		{"CronJob not a CronJob", func(t *testing.T) []byte {
			return admission(t, cronjobs, "", admissionv1.Create, "reminders", map[string]any{"spec": map[string]any{"jobTemplate": "x"}}, nil)
		}, false, "decode CronJob"},
		{"batch/v1 jobs scale is no such thing", func(t *testing.T) []byte {
			return admission(t, jobs, "scale", admissionv1.Update, "campaign", scaleJSON("campaign", 3), nil)
		}, false, ""},

		{"selector: the Deployment's own labels do not count", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "owner-labelled", ownLabels, nil)
		}, true, ""},
		{"selector: its template's do", func(t *testing.T) []byte {
			return admission(t, deployments, "", admissionv1.Create, "template-labelled", tplLabels, nil)
		}, true, "Deployment messaging/template-labelled: replicas 3"},
		{"selector: scale of a selected template", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "template-labelled", scaleJSON("template-labelled", 3), scaleJSON("template-labelled", 1))
		}, true, "scale of Deployment messaging/template-labelled: replicas 3"},
		{"selector: scale of an unselected template", func(t *testing.T) []byte {
			return admission(t, deployments, "scale", admissionv1.Update, "sender", scaleJSON("sender", 3), scaleJSON("sender", 1))
		}, true, ""},
		{"selector: HPA on a selected template", func(t *testing.T) []byte {
			return admission(t, hpaResource, "", admissionv1.Create, "hpa", hpaJSON("hpa", "Deployment", "template-labelled", 4), nil)
		}, true, "HorizontalPodAutoscaler hpa of Deployment messaging/template-labelled: maxReplicas 4"},
		{"selector: DaemonSet unselected", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", opted, nil), nil)
		}, true, ""},
		{"selector: DaemonSet selected", func(t *testing.T) []byte {
			return admission(t, daemonsets, "", admissionv1.Create, "relay", daemonSetJSON("relay", opted, map[string]string{"team": "messaging"}), nil)
		}, true, "DaemonSet messaging/relay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions("")
			if tc.selected {
				opts.ObjectSelector = sel
			}
			rec, resp := post(t, Webhook(opts, stored, quiet()), tc.body(t))
			checkWorkloadReview(t, rec, resp, tc.want)
		})
	}
}

// DaemonSets, Jobs and CronJobs from many goroutines, with multilingual
// names, through one webhook whose objectSelector every request shares:
// each gets its own decision.
func TestWebhookPerNodeAndJobsConcurrent(t *testing.T) {
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "messaging"}})
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions("")
	opts.ObjectSelector = sel
	h := Webhook(opts, nil, quiet())
	names := []string{"مرسل", "प्रेषक", "gönderici", "relay-😀", "e\u0301metteur"}
	opted := map[string]string{AnnotationInject: "true"}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			name := names[i%len(names)]
			selected := i%2 == 0
			var body []byte
			var kind string
			switch i % 3 {
			case 0:
				l := map[string]string{}
				if selected {
					l["team"] = "messaging"
				}
				kind, body = "DaemonSet", admission(t, daemonsets, "", admissionv1.Create, name, daemonSetJSON(name, opted, l), nil)
			case 1:
				j := jobJSON(name, 3, 0, opted)
				if selected {
					j["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"team": "messaging"}
				}
				kind, body = "Job", admission(t, jobs, "", admissionv1.Create, name, j, nil)
			default:
				c := cronJobJSON(name, 2, 0, opted)
				if selected {
					c["spec"].(map[string]any)["jobTemplate"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"team": "messaging"}
				}
				kind, body = "CronJob", admission(t, cronjobs, "", admissionv1.Create, name, c, nil)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Errorf("%s %s: %d %s", kind, name, rec.Code, rec.Body)
				return
			}
			if out.Response.Allowed == selected {
				t.Errorf("%s %s selected %v: allowed %v", kind, name, selected, out.Response.Allowed)
			}
			if !out.Response.Allowed && !strings.Contains(out.Response.Result.Message, kind+" messaging/"+name+": ") {
				t.Errorf("%s %s: refusal %q does not name it", kind, name, out.Response.Result.Message)
			}
		})
	}
	wg.Wait()
}

// checkWorkloadReview checks the workloads webhook's answer: an
// AdmissionReview with no patch, allowed when want is empty, else denied
// with a "sendguard: " message mentioning want, and a per-pod refusal a 403
// naming the opt-in annotation.
func checkWorkloadReview(t *testing.T, rec *httptest.ResponseRecorder, resp *admissionv1.AdmissionResponse, want string) {
	t.Helper()
	if resp == nil {
		t.Fatalf("response = %d %s, want an AdmissionReview", rec.Code, rec.Body)
	}
	if resp.Patch != nil || resp.PatchType != nil {
		t.Errorf("response has a patch: %s", resp.Patch)
	}
	if want == "" {
		if !resp.Allowed {
			t.Errorf("response = %s, want allowed", rec.Body)
		}
		return
	}
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, want) || !strings.HasPrefix(resp.Result.Message, "sendguard: ") {
		t.Fatalf("response = %s, want denied mentioning %q", rec.Body, want)
	}
	if strings.Contains(resp.Result.Message, "per-pod limits") && (resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, `sendguard.io/per-pod-limits: "accept"`)) {
		t.Errorf("refusal = %d %q, want 403 naming the opt-in", resp.Result.Code, resp.Result.Message)
	}
}
