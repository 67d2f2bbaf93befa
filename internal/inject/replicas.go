package inject

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Quotas are per instance across every replica of a sender, but the
// embedded store keeps them in the pod: a Deployment of 3 injected pods on
// the embedded store gives every instance 3 times its plan. Replicas
// refuses such a workload unless its pod template accepts per-pod limits.
// The webhook (Deployments, StatefulSets, ReplicaSets, their scale
// subresource and HorizontalPodAutoscalers) and `sendguard inject -f` both
// decide with it.

// AnnotationPerPodLimits, on a pod template, says what to do with more
// than one replica on the embedded store: "accept" runs them anyway (each
// pod enforces its own quotas and limits, which reset with the pod);
// "refuse" refuses the workload. Without it Options.PerPodLimits decides.
// Any other value is an error on the pod, as for AnnotationInject.
const AnnotationPerPodLimits = "sendguard.io/per-pod-limits"

// Values of AnnotationPerPodLimits and Options.PerPodLimits.
const (
	PerPodRefuse = "refuse"
	PerPodAccept = "accept"
)

// ErrPerPodLimits is what a refusal by Replicas wraps.
var ErrPerPodLimits = errors.New("per-pod limits")

// A Workload is what Replicas decides on: a pod template that runs
// Replicas pods at once.
type Workload struct {
	Kind, Namespace, Name string
	// Replicas is how many pods may run at once: spec.replicas, the
	// replicas a scale asks for, or an HPA's maxReplicas.
	Replicas int32
	// Field names Replicas in the refusal: "replicas" or "maxReplicas".
	Field string
	// Annotations are the pod template's.
	Annotations map[string]string
	// By names what is being refused when it is not the workload itself
	// (an HPA or a scale), for the message; empty otherwise.
	By string
}

// perPodLimits resolves AnnotationPerPodLimits against the default def.
func perPodLimits(ann map[string]string, def string) (string, error) {
	v, ok := ann[AnnotationPerPodLimits]
	if !ok {
		if def == "" {
			return PerPodRefuse, nil
		}
		return def, nil
	}
	if v != PerPodRefuse && v != PerPodAccept {
		return "", fmt.Errorf("annotation %s: %q, want %q or %q", AnnotationPerPodLimits, v, PerPodAccept, PerPodRefuse)
	}
	return v, nil
}

// embeddedStore reports whether injection gives a pod with these
// annotations the embedded store (AnnotationStore).
func embeddedStore(ann map[string]string) (bool, error) {
	switch v := ann[AnnotationStore]; v {
	case "", "embedded":
		return true, nil
	case "redis":
		return false, nil
	default:
		return false, fmt.Errorf("annotation %s: %q, want \"embedded\" or \"redis\"", AnnotationStore, v)
	}
}

// Replicas returns an error wrapping ErrPerPodLimits, naming the fix, when
// w runs more than one injected pod on the embedded store without
// accepting per-pod limits; otherwise nil. A template that injection
// leaves alone (not opting in, in kube-system or opts.Namespace) is never
// refused; one already injected (by `sendguard inject -f`) is judged by
// the same annotations. Annotation values that injection refuses are not
// its business: nil, and the pods are refused with the reason.
func Replicas(w Workload, opts Options) error {
	ann := w.Annotations
	if w.Replicas <= 1 || ann[AnnotationInject] != "true" || w.Namespace == metav1.NamespaceSystem || (opts.Namespace != "" && w.Namespace == opts.Namespace) {
		return nil
	}
	embedded, err := embeddedStore(ann)
	if err != nil || !embedded {
		return nil
	}
	mode, err := perPodLimits(ann, opts.PerPodLimits)
	if err == nil && mode == PerPodAccept {
		return nil
	}
	what := w.Kind + " " + w.Name
	if w.Namespace != "" {
		what = w.Kind + " " + w.Namespace + "/" + w.Name
	}
	if w.By != "" {
		what = w.By + " of " + what
	}
	bad := ""
	if err != nil {
		bad = " (" + err.Error() + ")"
	}
	return fmt.Errorf("%w: %s: %s %d on sendguard's embedded store gives each pod its own quotas and limits, so an instance could send %d times its plan: "+
		"share them through Redis (pod template annotation %s: \"redis\"), run 1 replica, or accept per-pod limits (pod template annotation %s: %q)%s",
		ErrPerPodLimits, what, w.Field, w.Replicas, w.Replicas, AnnotationStore, AnnotationPerPodLimits, PerPodAccept, bad)
}
