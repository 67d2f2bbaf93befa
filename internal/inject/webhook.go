package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReview bounds an AdmissionReview body: the API server caps objects at
// about 1.5 MiB and requests at 3 MiB.
const maxReview = 4 << 20

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Webhook returns the mutating admission webhook: it reads an
// admission.k8s.io/v1 AdmissionReview and answers it.
//
// Pods (CREATE): it runs Pod and answers with a JSONPatch turning the pod
// into Pod's result.
//
//   - A pod that does not opt in (or is skipped, or already injected),
//     another resource or another operation: allowed, no patch.
//   - A pod that opts in but cannot be injected (say, no port): denied with
//     code 400 and the reason, so a sender that asked for sendguard never
//     runs without it.
//
// Workloads: it never mutates them; it denies (code 403, the message of
// Replicas, which names the fix) what Replicas refuses:
//
//   - an apps/v1 Deployment, StatefulSet or ReplicaSet (CREATE, UPDATE)
//     by its spec.replicas; a ReplicaSet its Deployment controls is left
//     to the Deployment's check;
//   - the scale subresource of those (UPDATE: kubectl scale, the
//     HorizontalPodAutoscaler controller) by the replicas it asks for. The
//     request carries an autoscaling/v1 Scale, and its oldObject the old
//     Scale: neither has the pod template, so the workload is read from
//     the API server through get (the chart grants get on the three kinds,
//     nothing more);
//   - an autoscaling/v2 HorizontalPodAutoscaler (CREATE, UPDATE) by its
//     maxReplicas, when it targets an apps/v1 Deployment, StatefulSet or
//     ReplicaSet (read through get); other targets are allowed;
//   - an apps/v1 DaemonSet (CREATE, UPDATE) whatever its size: one pod per
//     node, a count unknown at admission;
//   - a batch/v1 Job (CREATE, UPDATE) by the pods it runs at once
//     (parallelism, or completions when fewer), a CronJob by its
//     jobTemplate's; a Job its CronJob controls is left to the CronJob's
//     check.
//
// With opts.ObjectSelector (the pod webhook's objectSelector; the chart
// registers this webhook without one, since the API server would match it
// against the workload's own labels and a Scale has none), a workload
// whose pod template's labels it does not select is allowed, as its pods
// would not be injected; one it selects is judged whatever its own labels,
// its scales and HPAs included.
//
// An UPDATE (or a scale) of a workload that was already refusable is
// allowed unless it asks for more replicas than before: objects that
// predate the injector keep working (their controllers update them, and
// deleting them removes finalizers through updates), and can only shrink.
// An object being deleted is always allowed.
//
// When the workload cannot be read (get is nil, the API server fails, RBAC
// is missing), the answer is HTTP 500 instead of an AdmissionReview: the
// API server then applies the webhook's failurePolicy, refusing the
// request with Fail and admitting it with Ignore, exactly as when the
// injector is down. A workload that no longer exists is allowed (the API
// server refuses the scale itself).
//
// A body that is not an AdmissionReview with a request: HTTP 400; the API
// server then applies the failurePolicy.
//
// It never panics on input. Objects are decoded leniently: the API server
// may be newer than the k8s.io/api this was built with, and its objects
// are valid by construction.
func Webhook(opts Options, get Getter, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxReview {
			http.Error(w, fmt.Sprintf("AdmissionReview larger than %d bytes", maxReview), http.StatusRequestEntityTooLarge)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil {
			http.Error(w, "decode AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Request == nil {
			http.Error(w, "want an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
			return
		}
		resp, err := admit(r.Context(), review.Request, opts, get, log)
		if err != nil {
			log.Error("sendguard admission failed; the API server applies the webhook's failurePolicy", "namespace", review.Request.Namespace, "name", review.Request.Name,
				"resource", review.Request.Resource.Resource, "sub_resource", review.Request.SubResource, "error", err)
			http.Error(w, "sendguard: "+err.Error(), http.StatusInternalServerError)
			return
		}
		resp.UID = review.Request.UID
		out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
		if err != nil {
			http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
}

// A Getter reads one object from the API server: the JSON at path (such
// as /apis/apps/v1/namespaces/NS/deployments/NAME) decoded into out. An
// object that does not exist is an error wrapping ErrNotFound.
type Getter interface {
	Get(ctx context.Context, path string, out any) error
}

// ErrNotFound is what a Getter's error wraps when the object does not
// exist.
var ErrNotFound = errors.New("not found")

// admit answers one request; an error means it could not decide (the
// caller answers HTTP 500, and the failurePolicy applies).
func admit(ctx context.Context, req *admissionv1.AdmissionRequest, opts Options, get Getter, log *slog.Logger) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	switch {
	case req.Resource == podResource:
		if req.SubResource != "" || req.Operation != admissionv1.Create {
			return allow, nil
		}
		return admitPod(req, opts, log), nil
	case workloadResources[req.Resource] != "":
		switch kind := workloadResources[req.Resource]; {
		case req.SubResource == "" && (req.Operation == admissionv1.Create || req.Operation == admissionv1.Update):
			return admitWorkload(req, kind, opts, log), nil
		case req.SubResource == "scale" && req.Operation == admissionv1.Update && scalable[kind]:
			return admitScale(ctx, req, kind, opts, get, log)
		}
	case req.Resource == hpaResource && req.SubResource == "" && (req.Operation == admissionv1.Create || req.Operation == admissionv1.Update):
		return admitAutoscaler(ctx, req, opts, get, log)
	}
	return allow, nil
}

func admitPod(req *admissionv1.AdmissionRequest, opts Options, log *slog.Logger) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	deny := func(err error) *admissionv1.AdmissionResponse {
		log.Warn("sendguard injection refused", "namespace", req.Namespace, "name", req.Name, "error", err)
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: "sendguard injection: " + err.Error()}}
	}
	if len(req.Object.Raw) == 0 {
		return deny(errors.New("request carries no pod"))
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Errorf("decode pod: %w", err))
	}
	patched, ok, err := Pod(&pod, req.Namespace, opts)
	if err != nil {
		return deny(err)
	}
	if !ok {
		return allow
	}
	patch, err := diff(&pod, patched)
	if err != nil {
		return deny(err)
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName
	}
	log.Info("sendguard injected", "namespace", req.Namespace, "pod", name, "dry_run", req.DryRun != nil && *req.DryRun)
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch, allow.PatchType = patch, &pt
	return allow
}

// workloadResources are the resources whose objects Replicas judges, and
// their kinds.
var workloadResources = map[metav1.GroupVersionResource]string{
	{Group: "apps", Version: "v1", Resource: "deployments"}:  "Deployment",
	{Group: "apps", Version: "v1", Resource: "statefulsets"}: "StatefulSet",
	{Group: "apps", Version: "v1", Resource: "replicasets"}:  "ReplicaSet",
	{Group: "apps", Version: "v1", Resource: "daemonsets"}:   "DaemonSet",
	{Group: "batch", Version: "v1", Resource: "jobs"}:        "Job",
	{Group: "batch", Version: "v1", Resource: "cronjobs"}:    "CronJob",
}

var hpaResource = metav1.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// withReplicas is w running n pods (a scale's, an HPA's maxReplicas).
func withReplicas(w Workload, n int32) Workload {
	w.Replicas = n
	return w
}

// refuse is the answer to a workload Replicas refuses.
func refuse(req *admissionv1.AdmissionRequest, err error, log *slog.Logger) *admissionv1.AdmissionResponse {
	log.Warn("sendguard refused per-pod limits", "namespace", req.Namespace, "name", req.Name, "resource", req.Resource.Resource, "sub_resource", req.SubResource,
		"dry_run", req.DryRun != nil && *req.DryRun, "error", err)
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: "sendguard: " + err.Error()}}
}

// malformed is the answer to a request whose object does not decode.
func malformed(req *admissionv1.AdmissionRequest, err error, log *slog.Logger) *admissionv1.AdmissionResponse {
	log.Warn("sendguard refused a malformed request", "namespace", req.Namespace, "name", req.Name, "resource", req.Resource.Resource, "error", err)
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: "sendguard: " + err.Error()}}
}

// ratchet reports whether an update from a state that was already
// refusable (oldErr) to newReplicas, no more than oldReplicas, is let
// through (see Webhook).
func ratchet(oldErr error, oldReplicas, newReplicas int32) bool {
	return oldErr != nil && newReplicas <= oldReplicas
}

func admitWorkload(req *admissionv1.AdmissionRequest, kind string, opts Options, log *slog.Logger) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if len(req.Object.Raw) == 0 {
		return malformed(req, fmt.Errorf("request carries no %s", kind), log)
	}
	var obj workloadObject
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return malformed(req, fmt.Errorf("decode %s: %w", kind, err), log)
	}
	if obj.Metadata.Namespace == "" {
		obj.Metadata.Namespace = req.Namespace
	}
	if obj.Metadata.DeletionTimestamp != nil || managed(kind, obj.Metadata.OwnerReferences) {
		return allow
	}
	w := obj.workloadOf(kind)
	err := Replicas(w, opts)
	if err == nil {
		return allow
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		var old workloadObject
		if json.Unmarshal(req.OldObject.Raw, &old) == nil {
			old.Metadata.Namespace = obj.Metadata.Namespace
			ow := old.workloadOf(kind)
			if ratchet(Replicas(ow, opts), ow.Replicas, w.Replicas) {
				return allow
			}
		}
	}
	return refuse(req, err, log)
}

// workloadPath is the REST path of an apps/v1 workload.
func workloadPath(resource, ns, name string) string {
	return "/apis/apps/v1/namespaces/" + url.PathEscape(ns) + "/" + resource + "/" + url.PathEscape(name)
}

// lookup reads an apps/v1 workload; found is false when it does not exist.
func lookup(ctx context.Context, get Getter, resource, ns, name string) (obj workloadObject, found bool, err error) {
	if get == nil {
		return obj, false, fmt.Errorf("cannot check per-pod limits: read %s %s/%s: the injector has no API server access", resource, ns, name)
	}
	if err := get.Get(ctx, workloadPath(resource, ns, name), &obj); err != nil {
		if errors.Is(err, ErrNotFound) {
			return obj, false, nil
		}
		return obj, false, fmt.Errorf("cannot check per-pod limits: read %s %s/%s: %w", resource, ns, name, err)
	}
	if obj.Metadata.Namespace == "" {
		obj.Metadata.Namespace = ns
	}
	return obj, true, nil
}

func admitScale(ctx context.Context, req *admissionv1.AdmissionRequest, kind string, opts Options, get Getter, log *slog.Logger) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	var scale autoscalingv1.Scale
	if len(req.Object.Raw) == 0 {
		return malformed(req, errors.New("request carries no Scale"), log), nil
	}
	if err := json.Unmarshal(req.Object.Raw, &scale); err != nil {
		return malformed(req, fmt.Errorf("decode Scale: %w", err), log), nil
	}
	if scale.Spec.Replicas <= 1 {
		return allow, nil // no need to read the workload
	}
	obj, found, err := lookup(ctx, get, req.Resource.Resource, req.Namespace, req.Name)
	if err != nil {
		return nil, err
	}
	if !found || obj.Metadata.DeletionTimestamp != nil || managed(kind, obj.Metadata.OwnerReferences) {
		return allow, nil
	}
	current := obj.workloadOf(kind)
	w := withReplicas(current, scale.Spec.Replicas)
	w.By = "scale"
	if err := Replicas(w, opts); err != nil {
		// The replicas before the scale: the old Scale's, else the
		// workload's as read.
		before := current.Replicas
		var old autoscalingv1.Scale
		if len(req.OldObject.Raw) > 0 && json.Unmarshal(req.OldObject.Raw, &old) == nil {
			before = old.Spec.Replicas
		}
		if ratchet(Replicas(withReplicas(current, before), opts), before, scale.Spec.Replicas) {
			return allow, nil
		}
		return refuse(req, err, log), nil
	}
	return allow, nil
}

// autoscaler is what the refusal reads of an autoscaling/v2
// HorizontalPodAutoscaler.
type autoscaler struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		ScaleTargetRef autoscaleTarget `json:"scaleTargetRef"`
		MaxReplicas    int32           `json:"maxReplicas"`
	} `json:"spec"`
}

func admitAutoscaler(ctx context.Context, req *admissionv1.AdmissionRequest, opts Options, get Getter, log *slog.Logger) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if len(req.Object.Raw) == 0 {
		return malformed(req, errors.New("request carries no HorizontalPodAutoscaler"), log), nil
	}
	var h autoscaler
	if err := json.Unmarshal(req.Object.Raw, &h); err != nil {
		return malformed(req, fmt.Errorf("decode HorizontalPodAutoscaler: %w", err), log), nil
	}
	target := h.Spec.ScaleTargetRef
	resource := strings.ToLower(target.Kind) + "s"
	if h.Spec.MaxReplicas <= 1 || h.Metadata.DeletionTimestamp != nil || !isApps(target.APIVersion) || !scalable[target.Kind] {
		return allow, nil
	}
	obj, found, err := lookup(ctx, get, resource, req.Namespace, target.Name)
	if err != nil {
		return nil, err
	}
	if !found || managed(target.Kind, obj.Metadata.OwnerReferences) {
		// Not there yet: the scales the HPA asks for are judged when they
		// come (the scale subresource).
		return allow, nil
	}
	name := h.Metadata.Name
	if name == "" {
		name = req.Name
	}
	current := obj.workloadOf(target.Kind)
	w := withReplicas(current, h.Spec.MaxReplicas)
	w.Field, w.By = "maxReplicas", "HorizontalPodAutoscaler "+name
	if err := Replicas(w, opts); err != nil {
		var old autoscaler
		if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 && json.Unmarshal(req.OldObject.Raw, &old) == nil && old.Spec.ScaleTargetRef == target {
			if ratchet(Replicas(withReplicas(current, old.Spec.MaxReplicas), opts), old.Spec.MaxReplicas, h.Spec.MaxReplicas) {
				return allow, nil
			}
		}
		return refuse(req, err, log), nil
	}
	return allow, nil
}

// diff returns the JSONPatch from before to after. Both sides are encoded
// from the Go types, so the patch holds only what injection changed, never
// a rewrite of fields the types do not know.
func diff(before, after *corev1.Pod) ([]byte, error) {
	a, err := json.Marshal(before)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(after)
	if err != nil {
		return nil, err
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("json patch: %w", err)
	}
	return json.Marshal(ops)
}
