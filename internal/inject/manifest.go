package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// maxManifest bounds what Manifests reads: far above any real manifest
// set, well below what would hurt.
const maxManifest = 64 << 20

// Manifests reads multi-document YAML (or JSON) from in and writes it to out
// with every opted-in Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
// Job and CronJob injected, as `sendguard inject -f` does. Documents it
// does not change (other kinds, workloads not opting in, already injected)
// are copied byte for byte; changed ones are re-encoded, so their comments
// are lost. Document order is kept. Workloads are decoded strictly: an
// unknown field is an error. On error nothing is written. It returns how
// many documents it injected.
//
// It refuses what the webhook refuses (see Replicas), with the same
// decision: a Deployment, StatefulSet or ReplicaSet with more than one
// replica on the embedded store, a DaemonSet on it, a Job or CronJob
// running more than one pod at once on it, and an autoscaling/v1 or v2
// HorizontalPodAutoscaler with maxReplicas above 1 whose target is such a
// workload in the same input (a target elsewhere is not known here: the
// webhook checks it).
func Manifests(in io.Reader, out io.Writer, opts Options) (int, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(io.LimitReader(in, maxManifest+1)))
	var buf bytes.Buffer
	injected, read := 0, 0
	var seen []seenDoc
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("document %d: %w", i, err)
		}
		if read += len(doc); read > maxManifest {
			return 0, fmt.Errorf("manifests larger than %d bytes", maxManifest)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			i--
			continue
		}
		res, ok, info, err := document(doc, opts)
		if err != nil {
			return 0, fmt.Errorf("document %d: %w", i, err)
		}
		info.index = i
		seen = append(seen, info)
		if ok {
			injected++
		}
		if buf.Len() > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(res)
		if !bytes.HasSuffix(res, []byte("\n")) {
			buf.WriteByte('\n')
		}
	}
	if err := checkAutoscalers(seen, opts); err != nil {
		return 0, err
	}
	_, err := out.Write(buf.Bytes())
	return injected, err
}

// A seenDoc is what Manifests remembers of a document to check the
// HorizontalPodAutoscalers against their targets.
type seenDoc struct {
	index      int
	kind       string // "" for kinds it does not remember
	ns, name   string
	workload   Workload        // a judged workload's, as Replicas sees it
	target     autoscaleTarget // an HPA's
	maxReplica int32
}

// autoscaleTarget is an HPA's scaleTargetRef.
type autoscaleTarget struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

// scalable are the kinds whose replicas Replicas judges (apps/v1).
var scalable = map[string]bool{"Deployment": true, "StatefulSet": true, "ReplicaSet": true}

func checkAutoscalers(seen []seenDoc, opts Options) error {
	for _, h := range seen {
		if h.kind != "HorizontalPodAutoscaler" || !isApps(h.target.APIVersion) || !scalable[h.target.Kind] {
			continue
		}
		for _, w := range seen {
			if w.kind != h.target.Kind || w.name != h.target.Name || w.ns != h.ns {
				continue
			}
			hw := withReplicas(w.workload, h.maxReplica)
			hw.Field, hw.By = "maxReplicas", "HorizontalPodAutoscaler "+h.name
			if err := Replicas(hw, opts); err != nil {
				return fmt.Errorf("document %d: %w", h.index, err)
			}
		}
	}
	return nil
}

// isApps reports whether apiVersion is the apps group's.
func isApps(apiVersion string) bool {
	return apiGroup(apiVersion) == "apps"
}

// Document injects one YAML or JSON document. It returns doc itself when
// nothing changes, otherwise the re-encoded YAML object, and whether it
// injected. A workload that Replicas refuses is an error.
func Document(doc []byte, opts Options) ([]byte, bool, error) {
	out, ok, _, err := document(doc, opts)
	return out, ok, err
}

func document(doc []byte, opts Options) ([]byte, bool, seenDoc, error) {
	var tm metav1.TypeMeta
	var info seenDoc
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, false, info, err
	}
	var (
		obj  any
		meta *metav1.ObjectMeta
		tpl  *corev1.PodTemplateSpec
	)
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Pod":
		o := &corev1.Pod{}
		obj, meta, tpl = o, &o.ObjectMeta, nil
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.Template
	case "apps/v1 ReplicaSet":
		o := &appsv1.ReplicaSet{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.Template
	case "batch/v1 Job":
		o := &batchv1.Job{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.Template
	case "batch/v1 CronJob":
		o := &batchv1.CronJob{}
		obj, meta, tpl = o, &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template
	case "autoscaling/v1 HorizontalPodAutoscaler", "autoscaling/v2 HorizontalPodAutoscaler":
		// Passed through; remembered for its target (checkAutoscalers).
		var h autoscaler
		if err := yaml.Unmarshal(doc, &h); err != nil {
			return nil, false, info, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		info = seenDoc{kind: tm.Kind, ns: h.Metadata.Namespace, name: h.Metadata.Name, target: h.Spec.ScaleTargetRef, maxReplica: h.Spec.MaxReplicas}
		return doc, false, info, nil
	default:
		return doc, false, info, nil
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, false, info, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	var ok bool
	var err error
	if tpl == nil {
		pod := obj.(*corev1.Pod)
		ok, err = Template(&pod.ObjectMeta, &pod.Spec, pod.Namespace, opts)
	} else {
		info = seenDoc{kind: tm.Kind, ns: meta.Namespace, name: meta.Name}
		ok, err = Template(&tpl.ObjectMeta, &tpl.Spec, meta.Namespace, opts)
	}
	if err != nil {
		return nil, false, info, fmt.Errorf("%s %s: %w", tm.Kind, meta.Name, err)
	}
	if judged[tm.Kind] != "" {
		// What the webhook reads of the object as sent (before injection).
		var wo workloadObject
		if err := yaml.Unmarshal(doc, &wo); err != nil {
			return nil, false, info, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		info.workload = wo.workloadOf(tm.Kind)
		if !managed(tm.Kind, meta.OwnerReferences) {
			if err := Replicas(info.workload, opts); err != nil {
				return nil, false, info, err
			}
		}
	}
	if !ok {
		return doc, false, info, nil
	}
	out, err := encode(obj)
	return out, err == nil, info, err
}

// encode writes obj as YAML without the empty creationTimestamp and status
// that the Go types always carry.
func encode(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	prune(m)
	if s, ok := m["status"].(map[string]any); ok && len(s) == 0 {
		delete(m, "status")
	}
	return yaml.Marshal(m)
}

func prune(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ts, ok := v["creationTimestamp"]; ok && ts == nil {
			delete(v, "creationTimestamp")
		}
		for _, e := range v {
			prune(e)
		}
	case []any:
		for _, e := range v {
			prune(e)
		}
	}
}
