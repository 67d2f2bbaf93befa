package inject

import (
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Quotas are per instance across every replica of a sender, but the
// embedded store keeps them in the pod: a Deployment of 3 injected pods on
// the embedded store gives every instance 3 times its plan. Replicas
// refuses such a workload unless its pod template accepts per-pod limits.
// The webhook (Deployments, StatefulSets, ReplicaSets, their scale
// subresource and HorizontalPodAutoscalers; DaemonSets, Jobs and CronJobs)
// and `sendguard inject -f` both decide with it, on the Workload that
// workloadOf reads from the object.

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
	// replicas a scale asks for, an HPA's maxReplicas, a Job's
	// parallelism (or its completions when fewer).
	Replicas int32
	// Field names Replicas in the refusal: "replicas", "maxReplicas",
	// "parallelism" or "completions".
	Field string
	// PerNode is set for a DaemonSet: one pod per node, a number unknown
	// at admission, so it counts as more than one whatever Replicas says.
	PerNode bool
	// Annotations are the pod template's.
	Annotations map[string]string
	// Labels are the pod template's, matched against
	// Options.ObjectSelector.
	Labels map[string]string
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
// accepting per-pod limits (a DaemonSet, w.PerNode, always counts as more
// than one); otherwise nil. A template that injection leaves alone (not
// opting in, in kube-system or opts.Namespace, or with labels that
// opts.ObjectSelector does not select, so the pod webhook never sees its
// pods) is never refused; one already injected (by `sendguard inject -f`)
// is judged by the same annotations. Annotation values that injection
// refuses are not its business: nil, and the pods are refused with the
// reason.
func Replicas(w Workload, opts Options) error {
	ann := w.Annotations
	if (w.Replicas <= 1 && !w.PerNode) || ann[AnnotationInject] != "true" || w.Namespace == metav1.NamespaceSystem || (opts.Namespace != "" && w.Namespace == opts.Namespace) {
		return nil
	}
	if opts.ObjectSelector != nil && !opts.ObjectSelector.Matches(labels.Set(w.Labels)) {
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
	if w.PerNode {
		return fmt.Errorf("%w: %s: one pod per node on sendguard's embedded store gives each pod its own quotas and limits, so an instance could send its plan once per node "+
			"(a DaemonSet is refused whatever its node count, which is unknown at admission): "+
			"share them through Redis (pod template annotation %s: \"redis\") or accept per-pod limits (pod template annotation %s: %q)%s",
			ErrPerPodLimits, what, AnnotationStore, AnnotationPerPodLimits, PerPodAccept, bad)
	}
	one := "run 1 replica"
	if w.Field == "parallelism" || w.Field == "completions" {
		one = "run 1 pod at a time (parallelism 1)"
	}
	return fmt.Errorf("%w: %s: %s %d on sendguard's embedded store gives each pod its own quotas and limits, so an instance could send %d times its plan: "+
		"share them through Redis (pod template annotation %s: \"redis\"), %s, or accept per-pod limits (pod template annotation %s: %q)%s",
		ErrPerPodLimits, what, w.Field, w.Replicas, w.Replicas, AnnotationStore, one, AnnotationPerPodLimits, PerPodAccept, bad)
}

// workloadObject is what the refusal reads of a Deployment, StatefulSet,
// ReplicaSet, DaemonSet, Job or CronJob: the fields of all of them that
// say how many pods run at once, and the pod template's metadata.
type workloadObject struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Replicas    *int32      `json:"replicas"`
		Parallelism *int32      `json:"parallelism"`
		Completions *int32      `json:"completions"`
		Template    podTemplate `json:"template"`
		JobTemplate struct {
			Spec struct {
				Parallelism *int32      `json:"parallelism"`
				Completions *int32      `json:"completions"`
				Template    podTemplate `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type podTemplate struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
}

// judged are the kinds whose objects Replicas judges, by the group of
// their apiVersion.
var judged = map[string]string{
	"Deployment": "apps", "StatefulSet": "apps", "ReplicaSet": "apps", "DaemonSet": "apps",
	"Job": "batch", "CronJob": "batch",
}

// workloadOf returns what Replicas judges of o, an object of kind (one of
// judged), as the API server defaults it: spec.replicas (default 1) for a
// Deployment, StatefulSet or ReplicaSet; one pod per node for a DaemonSet;
// for a Job (a CronJob: its jobTemplate) the pods it runs at once,
// parallelism (default 1), or completions when set and fewer.
func (o *workloadObject) workloadOf(kind string) Workload {
	w := Workload{Kind: kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name, Replicas: 1, Field: "replicas"}
	tpl := o.Spec.Template.Metadata
	switch kind {
	case "DaemonSet":
		w.PerNode, w.Field = true, ""
	case "Job":
		w.Replicas, w.Field = jobPods(o.Spec.Parallelism, o.Spec.Completions)
	case "CronJob":
		w.Replicas, w.Field = jobPods(o.Spec.JobTemplate.Spec.Parallelism, o.Spec.JobTemplate.Spec.Completions)
		tpl = o.Spec.JobTemplate.Spec.Template.Metadata
	default:
		if o.Spec.Replicas != nil {
			w.Replicas = *o.Spec.Replicas
		}
	}
	w.Annotations, w.Labels = tpl.Annotations, tpl.Labels
	return w
}

// jobPods is how many pods a Job runs at once, and the field that says
// so: the Job controller never runs more than the completions left.
func jobPods(parallelism, completions *int32) (int32, string) {
	n, field := int32(1), "parallelism"
	if parallelism != nil {
		n = *parallelism
	}
	if completions != nil && *completions < n {
		n, field = *completions, "completions"
	}
	return n, field
}

// managed reports whether an object of kind is sized by its controller
// owner, whose own check covers it: a ReplicaSet of a Deployment (a
// rollout briefly runs old and new pods side by side; refusing that would
// only stall it), a Job of a CronJob.
func managed(kind string, refs []metav1.OwnerReference) bool {
	owner, group := map[string]string{"ReplicaSet": "Deployment", "Job": "CronJob"}[kind], judged[kind]
	for _, o := range refs {
		if owner != "" && o.Controller != nil && *o.Controller && o.Kind == owner && apiGroup(o.APIVersion) == group {
			return true
		}
	}
	return false
}

// apiGroup is the group of apiVersion ("" for the core group).
func apiGroup(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}
