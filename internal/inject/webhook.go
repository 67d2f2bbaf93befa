package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReview bounds an AdmissionReview body: the API server caps objects at
// about 1.5 MiB and requests at 3 MiB.
const maxReview = 4 << 20

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Webhook returns the mutating admission webhook: it reads an
// admission.k8s.io/v1 AdmissionReview, runs Pod on a pod being created,
// and answers with a JSONPatch turning the pod into Pod's result.
//
//   - A pod that does not opt in (or is skipped, or already injected),
//     another resource or another operation: allowed, no patch.
//   - A pod that opts in but cannot be injected (say, no port): denied with
//     code 400 and the reason, so a sender that asked for sendguard never
//     runs without it.
//   - A body that is not an AdmissionReview with a request: HTTP 400; the
//     API server then applies the webhook's failurePolicy.
//
// It never panics on input. Pods are decoded leniently: the API server may
// be newer than the k8s.io/api this was built with, and its objects are
// valid by construction.
func Webhook(opts Options, log *slog.Logger) http.Handler {
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
		resp := admit(review.Request, opts, log)
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

func admit(req *admissionv1.AdmissionRequest, opts Options, log *slog.Logger) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		return allow
	}
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
