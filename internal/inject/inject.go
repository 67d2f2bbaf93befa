// Package inject adds sendguard and its Envoy sidecar to Kubernetes pod
// specs. It is pure: objects in, objects out, no API calls. The webhook
// (`sendguard inject serve`) and manual injection (`sendguard inject -f`)
// both call it, so a pod injected either way is the same pod.
//
// A pod opts in with the annotation sendguard.io/inject: "true" on the pod
// (for a workload: on its pod template). Injection adds two containers:
//
//   - sendguard, the ext_authz gRPC service (loopback only) and its admin
//     API (on the pod IP, for the kubelet's /healthz and /readyz probes);
//   - sendguard-envoy, Envoy rendered from envoy/sidecar.yaml, listening on
//     the container port named sendguard-http, which the sender's Service
//     must target; it forwards allowed requests to the sender's port on
//     127.0.0.1.
//
// By default both are native sidecars (init containers with restartPolicy
// Always, Kubernetes 1.29 and later); Options.Classic appends them to the
// pod's containers instead, for older clusters.
//
// Quotas are per instance across every replica, and the embedded store
// keeps them in the pod: Replicas refuses a workload of more than one
// injected replica on it unless its pod template accepts per-pod limits
// (AnnotationPerPodLimits). The webhook applies it to Deployments,
// StatefulSets, ReplicaSets, their scale subresource,
// HorizontalPodAutoscalers, DaemonSets, Jobs and CronJobs; Manifests to
// the documents it reads.
package inject

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/envoy"
	"github.com/sendguard/sendguard/internal/version"
)

// Annotations read (and, for Status, written) on the pod.
const (
	// AnnotationInject opts a pod in with "true"; "false" or no annotation
	// leaves it alone; any other value is an error, so a typo never leaves
	// a sender silently unprotected.
	AnnotationInject = "sendguard.io/inject"
	// AnnotationPort is the sender's port: a number, or the name of a
	// container port. Default: the first container's first port.
	AnnotationPort = "sendguard.io/port"
	// AnnotationWebhookPort is the port of the customer's inbound-message
	// webhook (Envoy routes /webhooks/ there). Default: the sender's port.
	AnnotationWebhookPort = "sendguard.io/webhook-port"
	// AnnotationConfig names the ConfigMap holding sendguard.yaml.
	// Default: Options.ConfigMap.
	AnnotationConfig = "sendguard.io/config"
	// AnnotationPolicies names a ConfigMap holding a policy tree, mounted
	// whole at /etc/sendguard/policies and passed as --policies instead of
	// the embedded policies. ConfigMap keys cannot hold a slash, so each
	// file's key is its tree path with every slash a dot
	// (sendguard.config.data.json for sendguard/config/data.json); the
	// policy loader reads such a top-level name as the nested path, skips
	// the volume's hidden ..timestamp directory and follows its symlinks.
	// The injector cannot build the volume's items from the keys: it sees
	// the pod, not the ConfigMap.
	AnnotationPolicies = "sendguard.io/policies"
	// AnnotationInboundSecret is "<Secret name>" or "<Secret
	// name>/<key>" (default key InboundSecretKey): that Secret key becomes
	// the sendguard container's InboundSecretEnv, the variable the config's
	// inbound.signature.secret_env must name. Without it the container has
	// no inbound signing secret.
	AnnotationInboundSecret = "sendguard.io/inbound-secret"
	// AnnotationRedisSecret is "<Secret name>" or "<Secret name>/<key>"
	// (default key RedisSecretKey): that Secret key becomes the sendguard
	// container's RedisPasswordEnv, the variable the config's
	// store.redis.password_env names by default. Only with
	// AnnotationStore "redis".
	AnnotationRedisSecret = "sendguard.io/redis-secret"
	// AnnotationStore is "embedded" (default: an emptyDir holds the bbolt
	// file, so limits are per pod and reset when the pod goes) or "redis"
	// (no state volume; the config's store.type must be redis). A workload
	// of more than one replica on the embedded store is refused unless it
	// accepts per-pod limits (see Replicas and AnnotationPerPodLimits).
	AnnotationStore = "sendguard.io/store"
	// AnnotationStatus marks an injected pod with the injector's version. A
	// pod carrying it is never injected again.
	AnnotationStatus = "sendguard.io/status"
)

// Names of what injection adds.
const (
	SendguardContainer = "sendguard"
	EnvoyContainer     = "sendguard-envoy"
	PortName           = "sendguard-http" // Envoy's listener; the Service targets it
	AdminPortName      = "sendguard-admin"
	ConfigVolume       = "sendguard-config"
	PoliciesVolume     = "sendguard-policies"
	StateVolume        = "sendguard-state"

	// InboundSecretEnv is the variable AnnotationInboundSecret sets, and
	// InboundSecretKey the Secret key it reads when the annotation names
	// none.
	InboundSecretEnv = "SENDGUARD_INBOUND_SECRET"
	InboundSecretKey = "inbound-secret"
	// RedisPasswordEnv is the variable AnnotationRedisSecret sets, and
	// RedisSecretKey the Secret key it reads when the annotation names none
	// (the key the chart's Redis Secret has).
	RedisPasswordEnv = "SENDGUARD_REDIS_PASSWORD"
	RedisSecretKey   = "redis-password"

	configDir   = "/etc/sendguard"
	policiesDir = "/etc/sendguard/policies"
	stateDir    = "/var/lib/sendguard"
)

// Options configure injection. Zero fields take the defaults documented on
// each; Defaults returns them filled in.
type Options struct {
	Version        string // written to AnnotationStatus; default version.Version
	SendguardImage string // default version.ImageRepository:<Version> (the chart's default image)
	EnvoyImage     string // default envoyproxy/envoy:v1.40.0
	// Classic adds the sidecars as ordinary containers (clusters before
	// Kubernetes 1.29) instead of native sidecars.
	Classic bool
	// Namespace is the injector's own namespace; its pods are never
	// injected (nor are kube-system's).
	Namespace string
	// ConfigMap is the config ConfigMap when a pod does not name one;
	// default "sendguard".
	ConfigMap string
	// PerPodLimits is PerPodRefuse (default) or PerPodAccept: what Replicas
	// does with a workload of more than one replica on the embedded store
	// whose pod template has no AnnotationPerPodLimits.
	PerPodLimits string
	// ObjectSelector is the pod webhook's objectSelector (the chart's
	// injector.objectSelector; nil: none). The API server matches it
	// against each pod, but against a workload's own labels, and a Scale
	// has none, so the workload webhook is registered without it and
	// Replicas matches it against the pod template's labels instead: a
	// workload whose pods would not be injected is not refused.
	ObjectSelector labels.Selector

	ListenPort      int32 // Envoy's listener (port sendguard-http); default 10000
	GRPCPort        int32 // sendguard ext_authz on 127.0.0.1; default 9191
	AdminPort       int32 // sendguard admin API (probes); default 9192
	EnvoyAdminPort  int32 // Envoy admin on 127.0.0.1; default 9901
	SendguardUID    int64 // default 65532
	EnvoyUID        int64 // default 101 (the envoy user of the official image)
	SendguardLimits corev1.ResourceRequirements
	EnvoyLimits     corev1.ResourceRequirements
}

// Defaults returns o with every zero field set to its default.
func (o Options) Defaults() Options {
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.SendguardImage == "" {
		o.SendguardImage = version.ImageRepository + ":" + o.Version
	}
	if o.EnvoyImage == "" {
		o.EnvoyImage = "envoyproxy/envoy:v1.40.0"
	}
	if o.ConfigMap == "" {
		o.ConfigMap = "sendguard"
	}
	if o.PerPodLimits == "" {
		o.PerPodLimits = PerPodRefuse
	}
	def32 := func(p *int32, v int32) {
		if *p == 0 {
			*p = v
		}
	}
	def32(&o.ListenPort, int32(envoy.Defaults.Listen))
	def32(&o.GRPCPort, int32(envoy.Defaults.GRPC))
	def32(&o.AdminPort, 9192)
	def32(&o.EnvoyAdminPort, int32(envoy.Defaults.Admin))
	if o.SendguardUID == 0 {
		o.SendguardUID = 65532
	}
	if o.EnvoyUID == 0 {
		o.EnvoyUID = 101
	}
	if o.SendguardLimits.Requests == nil && o.SendguardLimits.Limits == nil {
		o.SendguardLimits = resources("50m", "64Mi", "256Mi")
	}
	if o.EnvoyLimits.Requests == nil && o.EnvoyLimits.Limits == nil {
		o.EnvoyLimits = resources("50m", "64Mi", "256Mi")
	}
	return o
}

func resources(cpu, mem, memLimit string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memLimit)},
	}
}

// Pod returns a copy of pod with the sidecars added, and whether it added
// them. A pod that does not opt in, already carries AnnotationStatus or a
// sendguard container, or lives in kube-system or opts.Namespace is
// returned unchanged with false. pod is never modified. The namespace is
// pod.Namespace, or ns when that is empty (a pod being created through the
// webhook may not carry it yet).
func Pod(pod *corev1.Pod, ns string, opts Options) (*corev1.Pod, bool, error) {
	out := pod.DeepCopy()
	if out.Namespace != "" {
		ns = out.Namespace
	}
	ok, err := Template(&out.ObjectMeta, &out.Spec, ns, opts)
	if err != nil || !ok {
		return pod, false, err
	}
	return out, true, nil
}

// Template injects into meta and spec in place (the pod template of a
// workload, or a pod's own), under the rules of Pod. On error or when it
// returns false, meta and spec are unchanged.
func Template(meta *metav1.ObjectMeta, spec *corev1.PodSpec, ns string, opts Options) (bool, error) {
	if ns == metav1.NamespaceSystem || (opts.Namespace != "" && ns == opts.Namespace) {
		return false, nil
	}
	switch v, set := meta.Annotations[AnnotationInject]; {
	case !set || v == "false":
		return false, nil
	case v != "true":
		return false, fmt.Errorf("annotation %s: %q, want \"true\" or \"false\"", AnnotationInject, v)
	}
	if _, done := meta.Annotations[AnnotationStatus]; done || hasContainer(spec, SendguardContainer) || hasContainer(spec, EnvoyContainer) {
		return false, nil
	}
	opts = opts.Defaults()
	if opts.Classic && spec.RestartPolicy != "" && spec.RestartPolicy != corev1.RestartPolicyAlways {
		// A classic sidecar never exits, so a Job's pod would never
		// complete.
		return false, fmt.Errorf("restartPolicy %s (a Job's pod) with classic sidecars would never complete: inject native sidecars (Kubernetes 1.29 or later)", spec.RestartPolicy)
	}
	p, err := resolve(meta.Annotations, spec, opts)
	if err != nil {
		return false, err
	}
	cfg, err := envoy.Render(envoy.Ports{Listen: int(opts.ListenPort), GRPC: int(opts.GRPCPort), Sender: int(p.sender), Webhook: int(p.webhook), Admin: int(opts.EnvoyAdminPort)}, envoy.Options{})
	if err != nil {
		return false, err
	}
	cfgJSON, err := compact(cfg)
	if err != nil {
		return false, err
	}

	sg, ev := sendguardContainer(p, opts), envoyContainer(cfgJSON, opts)
	if opts.Classic {
		spec.Containers = append(spec.Containers, sg, ev)
	} else {
		always := corev1.ContainerRestartPolicyAlways
		sg.RestartPolicy, ev.RestartPolicy = &always, &always
		spec.InitContainers = append(spec.InitContainers, sg, ev)
	}
	spec.Volumes = append(spec.Volumes, volumes(p)...)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationStatus] = opts.Version
	return true, nil
}

// A plan is what the annotations resolved to.
type plan struct {
	sender, webhook  int32
	config, policies string
	embedded         bool
	inbound          *corev1.SecretKeySelector // nil: no inbound secret
	redis            *corev1.SecretKeySelector // nil: no Redis password
}

// secretKey parses a "<Secret name>" or "<Secret name>/<key>" annotation.
func secretKey(ann, v, defKey string) (*corev1.SecretKeySelector, error) {
	name, key, hasKey := strings.Cut(v, "/")
	if !hasKey {
		key = defKey
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("annotation %s: %q: Secret name %q: %s", ann, v, name, strings.Join(errs, "; "))
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return nil, fmt.Errorf("annotation %s: %q: key %q: %s", ann, v, key, strings.Join(errs, "; "))
	}
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}, nil
}

func resolve(ann map[string]string, spec *corev1.PodSpec, opts Options) (plan, error) {
	p := plan{config: opts.ConfigMap, embedded: true, policies: ann[AnnotationPolicies]}
	if v, ok := ann[AnnotationConfig]; ok {
		if v == "" {
			return p, fmt.Errorf("annotation %s: empty ConfigMap name", AnnotationConfig)
		}
		p.config = v
	}
	var err error
	if v, ok := ann[AnnotationInboundSecret]; ok {
		if p.inbound, err = secretKey(AnnotationInboundSecret, v, InboundSecretKey); err != nil {
			return p, err
		}
	}
	if p.embedded, err = embeddedStore(ann); err != nil {
		return p, err
	}
	// Only a workload's replicas make it matter (see Replicas), but a typo
	// is refused on every pod, so it never waits for a scale-up to show.
	if _, err := perPodLimits(ann, opts.PerPodLimits); err != nil {
		return p, err
	}
	if v, ok := ann[AnnotationRedisSecret]; ok {
		if p.embedded {
			return p, fmt.Errorf("annotation %s needs %s: \"redis\" (the embedded store has no password)", AnnotationRedisSecret, AnnotationStore)
		}
		if p.redis, err = secretKey(AnnotationRedisSecret, v, RedisSecretKey); err != nil {
			return p, err
		}
	}
	if p.sender, err = port(ann, AnnotationPort, spec, 0); err != nil {
		return p, err
	}
	if p.webhook, err = port(ann, AnnotationWebhookPort, spec, p.sender); err != nil {
		return p, err
	}
	ours := map[int32]string{opts.ListenPort: "Envoy's listener", opts.GRPCPort: "sendguard's gRPC port", opts.AdminPort: "sendguard's admin port", opts.EnvoyAdminPort: "Envoy's admin port"}
	if len(ours) != 4 {
		return p, errors.New("injector options: the listener, gRPC, admin and Envoy admin ports must differ")
	}
	for _, s := range []struct {
		ann  string
		port int32
	}{{AnnotationPort, p.sender}, {AnnotationWebhookPort, p.webhook}} {
		if what, clash := ours[s.port]; clash {
			return p, fmt.Errorf("%s %d: taken by %s", s.ann, s.port, what)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == ConfigVolume || v.Name == PoliciesVolume || v.Name == StateVolume {
			return p, fmt.Errorf("the pod already has a volume named %s", v.Name)
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			for _, cp := range c.Ports {
				if cp.Name == PortName || cp.Name == AdminPortName {
					return p, fmt.Errorf("container %q already has a port named %s", c.Name, cp.Name)
				}
				if what, clash := ours[cp.ContainerPort]; clash {
					return p, fmt.Errorf("container %q port %d: taken by %s", c.Name, cp.ContainerPort, what)
				}
			}
		}
	}
	return p, nil
}

// port resolves a port annotation: a number, or a container port's name.
// Without the annotation it is def, or (def 0) the first container's first
// port.
func port(ann map[string]string, key string, spec *corev1.PodSpec, def int32) (int32, error) {
	v, ok := ann[key]
	if !ok {
		if def != 0 {
			return def, nil
		}
		if len(spec.Containers) == 0 || len(spec.Containers[0].Ports) == 0 {
			return 0, fmt.Errorf("annotation %s missing and the first container declares no port: say which port the sender listens on", key)
		}
		return spec.Containers[0].Ports[0].ContainerPort, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("annotation %s: %d is not a port (1 to 65535)", key, n)
		}
		return int32(n), nil
	}
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name != "" && cp.Name == v {
				return cp.ContainerPort, nil
			}
		}
	}
	return 0, fmt.Errorf("annotation %s: no container port named %q", key, v)
}

func hasContainer(spec *corev1.PodSpec, name string) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

func securityContext(uid int64) *corev1.SecurityContext {
	f, t := false, true
	return &corev1.SecurityContext{
		RunAsNonRoot:             &t,
		RunAsUser:                &uid,
		RunAsGroup:               &uid,
		ReadOnlyRootFilesystem:   &t,
		AllowPrivilegeEscalation: &f,
		Privileged:               &f,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func sendguardContainer(p plan, opts Options) corev1.Container {
	args := []string{"serve", "--config", configDir + "/sendguard.yaml"}
	mounts := []corev1.VolumeMount{{Name: ConfigVolume, MountPath: configDir, ReadOnly: true}}
	if p.policies != "" {
		args = append(args, "--policies", policiesDir)
		mounts = append(mounts, corev1.VolumeMount{Name: PoliciesVolume, MountPath: policiesDir, ReadOnly: true})
	}
	c := corev1.Container{
		Name:  SendguardContainer,
		Image: opts.SendguardImage,
		Args:  args,
		Env: []corev1.EnvVar{
			// gRPC stays on loopback: only this pod's Envoy asks.
			{Name: "SENDGUARD_GRPC_ADDR", Value: fmt.Sprintf("127.0.0.1:%d", opts.GRPCPort)},
			// The admin API listens on the pod IP so the kubelet can probe
			// it; everything but /healthz and /readyz needs the admin token.
			{Name: "SENDGUARD_ADMIN_ADDR", Value: fmt.Sprintf("0.0.0.0:%d", opts.AdminPort)},
		},
		Ports:                    []corev1.ContainerPort{{Name: AdminPortName, ContainerPort: opts.AdminPort, Protocol: corev1.ProtocolTCP}},
		Resources:                opts.SendguardLimits,
		VolumeMounts:             mounts,
		StartupProbe:             httpProbe("/readyz", 1, 60),
		LivenessProbe:            httpProbe("/healthz", 10, 3),
		ReadinessProbe:           httpProbe("/readyz", 5, 1),
		SecurityContext:          securityContext(opts.SendguardUID),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if p.inbound != nil {
		c.Env = append(c.Env, corev1.EnvVar{Name: InboundSecretEnv, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: p.inbound}})
	}
	if p.redis != nil {
		c.Env = append(c.Env, corev1.EnvVar{Name: RedisPasswordEnv, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: p.redis}})
	}
	if p.embedded {
		// store.path defaults to sendguard.db, relative to the working
		// directory: the emptyDir.
		c.WorkingDir = stateDir
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: StateVolume, MountPath: stateDir})
	}
	return c
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(AdminPortName)}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   1,
	}
}

func envoyContainer(cfg string, opts Options) corev1.Container {
	return corev1.Container{
		Name:    EnvoyContainer,
		Image:   opts.EnvoyImage,
		Command: []string{"envoy"},
		// The rendered sidecar.yaml travels in the pod spec itself: no
		// ConfigMap to create in the sender's namespace, nothing to keep in
		// sync, and the webhook stays free of side effects.
		Args:  []string{"--config-yaml", cfg, "--log-level", "warn", "--disable-hot-restart"},
		Ports: []corev1.ContainerPort{{Name: PortName, ContainerPort: opts.ListenPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(PortName)}},
			PeriodSeconds: 5,
		},
		Resources:                opts.EnvoyLimits,
		SecurityContext:          securityContext(opts.EnvoyUID),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func volumes(p plan) []corev1.Volume {
	vs := []corev1.Volume{{Name: ConfigVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.config}}}}}
	if p.policies != "" {
		vs = append(vs, corev1.Volume{Name: PoliciesVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: p.policies}}}})
	}
	if p.embedded {
		vs = append(vs, corev1.Volume{Name: StateVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return vs
}

// compact turns the rendered YAML into one line of JSON (Envoy parses JSON
// as YAML): the comments of sidecar.yaml stay in the repository, not in
// every pod spec.
func compact(y string) (string, error) {
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return "", fmt.Errorf("envoy config: %w", err)
	}
	return string(j), nil
}
