package chart

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/inject"
)

const (
	root     = "../.."
	chartDir = "../../charts/sendguard"
	ns       = "sg"
	release  = "r"
)

// helm is the helm binary; without one the test fails under CI=true (CI
// must run these) and is skipped elsewhere.
func helm(t *testing.T) string {
	t.Helper()
	p, err := Helm(root, os.Getenv)
	if errors.Is(err, ErrNoHelm) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// render renders the chart with args and decodes it; want the refusal
// (non-empty refused) to check that helm fails with that text instead.
func render(t *testing.T, args ...string) []Object {
	t.Helper()
	out, err := Template(context.Background(), helm(t), chartDir, release, ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func refused(t *testing.T, want string, args ...string) {
	t.Helper()
	_, err := Template(context.Background(), helm(t), chartDir, release, ns, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("helm template %q = %v, want a refusal naming %q", args, err, want)
	}
}

func find(objs []Object, kind, name string) *Object {
	for i := range objs {
		if objs[i].Kind == kind && (name == "" || objs[i].Name == name) {
			return &objs[i]
		}
	}
	return nil
}

func kinds(objs []Object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Kind+"/"+o.Name)
	}
	return ks
}

// configFile is the demo config without its store section, as a user
// wiring Redis through the chart writes it.
func configFile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "cmd/devstack/sendguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	skip := false
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "store:") {
			skip = true
			continue
		}
		if skip && (strings.HasPrefix(l, " ") || l == "") {
			continue
		}
		skip = false
		keep = append(keep, l)
	}
	p := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// combos are the values combinations every structural test renders.
func combos(t *testing.T) map[string][]string {
	cfg := configFile(t)
	return map[string][]string{
		"injector":                {},
		"injector classic":        {"--set", "injector.classic=true"},
		"injector bundled redis":  {"--set", "redis.bundled=true"},
		"standalone bundled":      {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "redis.bundled=true", "--set", "standalone.hpa.enabled=true"},
		"standalone bundled pvc":  {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "redis.bundled=true", "--set", "redis.persistence.enabled=true"},
		"standalone external":     {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "redis.addr=redis.example:6379", "--set", "redis.passwordSecret=ext"},
		"standalone cluster":      {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "redis.addrs={r-0:6379,r-1:6379,r-2:6379}", "--set", "redis.tls.caSecret=ca", "--set", "standalone.hpa.enabled=true"},
		"standalone sentinel":     {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "redis.sentinel.masterName=m", "--set", "redis.sentinel.addrs={s-0:26379,s-1:26379}", "--set", "redis.sentinel.passwordSecret=s"},
		"standalone per-pod":      {"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "store.acceptPerPodLimits=true"},
		"istio":                   {"--set", "mode=istio", "--set-file", "config=" + cfg, "--set", "standalone.replicas=1", "--set", "istio.selector.app=sender"},
		"ci standalone redis":     {"-f", filepath.Join(chartDir, "ci/standalone-redis-values.yaml")},
		"ci injector certmanager": {"-f", filepath.Join(chartDir, "ci/injector-certmanager-values.yaml")},
		"ci istio":                {"-f", filepath.Join(chartDir, "ci/istio-values.yaml")},
	}
}

// Every container the chart renders runs locked down: non-root, read-only
// root filesystem, no privilege escalation, no privilege, all capabilities
// dropped, seccomp RuntimeDefault, at the container level (so a pod-level
// override cannot loosen it). The injected sidecars get the same from
// internal/inject (TestInjectedContainers there; checked again below).
func TestSecurityContexts(t *testing.T) {
	for name, args := range combos(t) {
		t.Run(name, func(t *testing.T) {
			objs := render(t, args...)
			n := 0
			for _, o := range objs {
				spec := o.PodSpec()
				if spec == nil {
					continue
				}
				if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
					t.Errorf("%s %s: pod securityContext without runAsNonRoot", o.Kind, o.Name)
				}
				// The injector talks to the API server as its service
				// account (it reads the workload of a scale or an HPA, and
				// without cert-manager keeps its own CA); nothing else does.
				injector := o.Kind == "Deployment" && strings.HasSuffix(o.Name, "-injector")
				if injector {
					if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
						t.Errorf("%s %s: reads workloads through the API server but mounts no service account token", o.Kind, o.Name)
					}
				} else if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
					t.Errorf("%s %s: mounts a service account token it does not use", o.Kind, o.Name)
				}
				for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
					n++
					if why := lockedDown(c.SecurityContext); why != "" {
						t.Errorf("%s %s container %s: %s", o.Kind, o.Name, c.Name, why)
					}
				}
			}
			if n == 0 {
				t.Fatalf("no containers rendered: %q", kinds(objs))
			}
		})
	}
	t.Run("injected", func(t *testing.T) {
		for _, classic := range []bool{false, true} {
			pod := &corev1.Pod{}
			pod.Annotations = map[string]string{inject.AnnotationInject: "true", inject.AnnotationStore: "redis"}
			pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "a", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
			out, ok, err := inject.Pod(pod, "messaging", inject.Options{Classic: classic})
			if err != nil || !ok {
				t.Fatalf("inject.Pod = %v, %v", ok, err)
			}
			for _, c := range append(slices.Clone(out.Spec.InitContainers), out.Spec.Containers...) {
				if c.Name == "app" {
					continue
				}
				if why := lockedDown(c.SecurityContext); why != "" {
					t.Errorf("injected (classic %v) %s: %s", classic, c.Name, why)
				}
			}
		}
	})
}

// lockedDown says what is missing from sc, or "".
func lockedDown(sc *corev1.SecurityContext) string {
	switch {
	case sc == nil:
		return "no securityContext"
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		return "runAsNonRoot not true"
	case sc.RunAsUser != nil && *sc.RunAsUser == 0:
		return "runAsUser 0"
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		return "root filesystem writable"
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		return "privilege escalation allowed"
	case sc.Privileged != nil && *sc.Privileged:
		return "privileged"
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		return "capabilities not exactly drop [ALL]"
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		return "seccomp not RuntimeDefault"
	}
	return ""
}

// The schema keeps the guarantees: values that would loosen a container's
// securityContext, or keys the chart does not know, are refused.
func TestSchemaRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"writable root", []string{"--set", "securityContext.readOnlyRootFilesystem=false"}, "readOnlyRootFilesystem"},
		{"root", []string{"--set", "securityContext.runAsNonRoot=false"}, "runAsNonRoot"},
		{"escalation", []string{"--set", "redis.securityContext.allowPrivilegeEscalation=true"}, "allowPrivilegeEscalation"},
		{"no seccomp", []string{"--set", "securityContext.seccompProfile.type=Unconfined"}, "seccompProfile"},
		{"unknown redis key", []string{"--set", "redis.bundeld=true"}, "bundeld"},
		{"old top-level acceptPerPodLimits", []string{"--set", "acceptPerPodLimits=true"}, "acceptPerPodLimits"},
		{"accept not a bool", []string{"--set", "store.acceptPerPodLimits=yes"}, "acceptPerPodLimits"},
		{"redis addr without port", []string{"--set", "redis.addr=redis.example"}, "addr"},
		{"monitor interval", []string{"--set", "metrics.serviceMonitor.interval=often"}, "interval"},
		{"perPodLimits not refuse or accept", []string{"--set", "injector.perPodLimits=allow"}, "perPodLimits"},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.want, tc.args...) })
	}
}

// Quotas are per instance across replicas: standalone with the embedded
// store and more than one replica (or an HPA) is refused unless
// store.acceptPerPodLimits says per-pod limits are meant; wiring Redis
// lifts the refusal.
func TestEmbeddedStoreReplicas(t *testing.T) {
	cfg := configFile(t)
	base := []string{"--set", "mode=standalone", "--set-file", "config=" + cfg}
	for _, tc := range []struct {
		name   string
		args   []string
		refuse bool
	}{
		{"two replicas", []string{"--set", "standalone.replicas=2"}, true},
		{"hpa", []string{"--set", "standalone.replicas=1", "--set", "standalone.hpa.enabled=true"}, true},
		{"istio two replicas", []string{"--set", "mode=istio", "--set", "istio.selector.app=s", "--set", "standalone.replicas=2"}, true},
		{"one replica", []string{"--set", "standalone.replicas=1"}, false},
		{"accepted", []string{"--set", "standalone.replicas=3", "--set", "store.acceptPerPodLimits=true"}, false},
		{"bundled redis", []string{"--set", "standalone.replicas=3", "--set", "redis.bundled=true"}, false},
		{"external redis", []string{"--set", "standalone.hpa.enabled=true", "--set", "redis.addr=10.0.0.7:6379"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(slices.Clone(base), tc.args...)
			if tc.refuse {
				refused(t, "store.acceptPerPodLimits", args...)
				return
			}
			if d := find(render(t, args...), "Deployment", release+"-sendguard"); d == nil {
				t.Error("no sendguard Deployment")
			}
		})
	}
}

// The bundled Redis: a one-replica StatefulSet behind a headless Service,
// its password from a generated Secret (or the named one), and sendguard
// wired to it: the rendered sendguard.yaml loads with sendguard's own config
// loader and names the Service, and SENDGUARD_REDIS_PASSWORD reads the same
// Secret key the Redis container reads.
func TestBundledRedis(t *testing.T) {
	cfg := configFile(t)
	for _, tc := range []struct {
		name       string
		args       []string
		secret     string // the password Secret both sides read
		generated  bool   // the chart renders that Secret
		persistent bool
	}{
		{"generated password", []string{"--set", "redis.bundled=true"}, "r-sendguard-redis", true, false},
		{"named password", []string{"--set", "redis.bundled=true", "--set", "redis.passwordSecret=mine"}, "mine", false, false},
		{"persistent", []string{"--set", "redis.bundled=true", "--set", "redis.persistence.enabled=true", "--set", "redis.persistence.storageClass=fast"}, "r-sendguard-redis", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, append([]string{"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "standalone.replicas=2"}, tc.args...)...)
			sts := find(objs, "StatefulSet", "r-sendguard-redis")
			if sts == nil {
				t.Fatalf("no Redis StatefulSet in %q", kinds(objs))
			}
			ss := sts.Typed.(*appsv1.StatefulSet)
			if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 || ss.Spec.ServiceName != "r-sendguard-redis" {
				t.Errorf("StatefulSet replicas %v serviceName %q, want 1 and the headless Service", ss.Spec.Replicas, ss.Spec.ServiceName)
			}
			rc := ss.Spec.Template.Spec.Containers[0]
			if ref := secretRef(rc, "REDIS_PASSWORD"); ref == nil || ref.Name != tc.secret || ref.Key != "redis-password" {
				t.Errorf("Redis REDIS_PASSWORD from %+v, want %s/redis-password", ref, tc.secret)
			}
			if !slices.Contains(rc.Args, "--requirepass") || !slices.Contains(rc.Args, "$(REDIS_PASSWORD)") {
				t.Errorf("Redis args %q do not require the password", rc.Args)
			}
			if got := len(ss.Spec.VolumeClaimTemplates) == 1; got != tc.persistent {
				t.Errorf("volumeClaimTemplates = %d, persistence %v", len(ss.Spec.VolumeClaimTemplates), tc.persistent)
			}
			if tc.persistent && (ss.Spec.VolumeClaimTemplates[0].Spec.StorageClassName == nil || *ss.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != "fast") {
				t.Errorf("storage class = %v, want fast", ss.Spec.VolumeClaimTemplates[0].Spec.StorageClassName)
			}
			if !tc.persistent && !slices.Contains(rc.Args, "--save") {
				t.Errorf("Redis args %q: without persistence, want --save \"\"", rc.Args)
			}

			svc := find(objs, "Service", "r-sendguard-redis")
			if svc == nil {
				t.Fatal("no Redis Service")
			}
			s := svc.Typed.(*corev1.Service)
			if s.Spec.ClusterIP != corev1.ClusterIPNone || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 6379 {
				t.Errorf("Redis Service: clusterIP %q ports %+v, want headless on 6379", s.Spec.ClusterIP, s.Spec.Ports)
			}
			for k, v := range s.Spec.Selector {
				if ss.Spec.Template.Labels[k] != v {
					t.Errorf("Redis Service selects %s=%s, the pod has %q", k, v, ss.Spec.Template.Labels[k])
				}
			}

			sec := find(objs, "Secret", tc.secret)
			if (sec != nil) != tc.generated {
				t.Fatalf("Secret %s rendered: %v, want %v", tc.secret, sec != nil, tc.generated)
			}
			if sec != nil {
				if pw := sec.Typed.(*corev1.Secret).Data["redis-password"]; len(pw) < 32 {
					t.Errorf("generated password is %d bytes, want 32", len(pw))
				}
			}

			dep := find(objs, "Deployment", "r-sendguard")
			if dep == nil {
				t.Fatal("no sendguard Deployment")
			}
			sg := dep.Typed.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
			if ref := secretRef(sg, "SENDGUARD_REDIS_PASSWORD"); ref == nil || ref.Name != tc.secret || ref.Key != "redis-password" {
				t.Errorf("sendguard SENDGUARD_REDIS_PASSWORD from %+v, want %s/redis-password", ref, tc.secret)
			}
			c := loadRendered(t, objs)
			if c.Store.Type != "redis" || c.Store.Redis.Addr != "r-sendguard-redis.sg.svc:6379" || c.Store.Redis.PasswordEnv != "SENDGUARD_REDIS_PASSWORD" {
				t.Errorf("rendered store = %+v, want redis at r-sendguard-redis.sg.svc:6379, password from SENDGUARD_REDIS_PASSWORD", c.Store)
			}
		})
	}

	t.Run("external", func(t *testing.T) {
		objs := render(t, "--set", "mode=standalone", "--set-file", "config="+cfg, "--set", "redis.addr=redis.example:6380", "--set", "redis.passwordSecret=ext")
		if find(objs, "StatefulSet", "") != nil || find(objs, "Secret", "r-sendguard-redis") != nil {
			t.Errorf("external Redis rendered a bundled one: %q", kinds(objs))
		}
		if c := loadRendered(t, objs); c.Store.Type != "redis" || c.Store.Redis.Addr != "redis.example:6380" {
			t.Errorf("rendered store = %+v", c.Store)
		}
	})
	t.Run("injector", func(t *testing.T) {
		// The senders' ConfigMaps name the address: the chart renders the
		// Redis and tells where it is.
		objs := render(t, "--set", "redis.bundled=true")
		if find(objs, "StatefulSet", "r-sendguard-redis") == nil || find(objs, "Secret", "r-sendguard-redis") == nil {
			t.Errorf("injector mode with redis.bundled: %q", kinds(objs))
		}
	})
	t.Run("refusals", func(t *testing.T) {
		refused(t, "choose one", "--set", "redis.bundled=true", "--set", "redis.addr=x:1")
		refused(t, "leave store out of config", "--set", "mode=standalone", "--set-file", "config="+filepath.Join(root, "cmd/devstack/sendguard.yaml"), "--set", "redis.bundled=true", "--set", "standalone.replicas=1")
	})
	t.Run("config untouched without redis", func(t *testing.T) {
		raw, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		objs := render(t, "--set", "mode=standalone", "--set-file", "config="+cfg, "--set", "standalone.replicas=1")
		cm := find(objs, "ConfigMap", "r-sendguard-config")
		if cm == nil {
			t.Fatal("no ConfigMap")
		}
		if got := cm.Typed.(*corev1.ConfigMap).Data["sendguard.yaml"]; strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
			t.Errorf("sendguard.yaml changed by the chart:\n%s", got)
		}
	})
}

func secretRef(c corev1.Container, env string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == env && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// loadRendered loads the rendered ConfigMap's sendguard.yaml with
// sendguard's config loader: what the pod will read.
func loadRendered(t *testing.T, objs []Object) *config.Config {
	t.Helper()
	cm := find(objs, "ConfigMap", "r-sendguard-config")
	if cm == nil {
		t.Fatal("no sendguard ConfigMap")
	}
	p := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(p, []byte(cm.Typed.(*corev1.ConfigMap).Data["sendguard.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatalf("the rendered sendguard.yaml: %v", err)
	}
	return c
}

// The ServiceMonitor exists only where its CRD does, only for
// standalone/istio (the Service it selects), and scrapes /metrics on the
// admin port of exactly that Service.
func TestServiceMonitor(t *testing.T) {
	cfg := configFile(t)
	standalone := []string{"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "standalone.replicas=1"}
	crd := []string{"--api-versions", "monitoring.coreos.com/v1"}
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{"no CRD", standalone, false},
		{"CRD", append(slices.Clone(standalone), crd...), true},
		{"CRD, disabled", append(append(slices.Clone(standalone), crd...), "--set", "metrics.serviceMonitor.enabled=false"), false},
		{"injector, CRD", crd, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, append(tc.args, "--set", "metrics.serviceMonitor.labels.release=prom")...)
			sm := find(objs, "ServiceMonitor", "")
			if (sm != nil) != tc.want {
				t.Fatalf("ServiceMonitor rendered %v, want %v: %q", sm != nil, tc.want, kinds(objs))
			}
			if sm == nil {
				return
			}
			if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Namespace != ns {
				t.Errorf("ServiceMonitor %s in %q", sm.APIVersion, sm.Namespace)
			}
			meta := sm.Raw["metadata"].(map[string]any)
			if meta["labels"].(map[string]any)["release"] != "prom" {
				t.Errorf("ServiceMonitor labels %v, want release=prom", meta["labels"])
			}
			spec := sm.Raw["spec"].(map[string]any)
			sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
			svc := find(objs, "Service", "r-sendguard").Typed.(*corev1.Service)
			for k, v := range sel {
				if svc.Labels[k] != v {
					t.Errorf("ServiceMonitor selects %s=%v; the Service has %q", k, v, svc.Labels[k])
				}
			}
			for _, o := range objs {
				if o.Kind == "Service" && o.Name != svc.Name {
					matches := true
					for k, v := range sel {
						if o.Typed.(*corev1.Service).Labels[k] != v {
							matches = false
						}
					}
					if matches {
						t.Errorf("ServiceMonitor also selects Service %s", o.Name)
					}
				}
			}
			ep := spec["endpoints"].([]any)[0].(map[string]any)
			if ep["path"] != "/metrics" || ep["port"] != "http-admin" || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http-admin" }) {
				t.Errorf("endpoint %v, want /metrics on the Service's http-admin port", ep)
			}
		})
	}
}

// hasArg reports whether a container of spec runs with the argument
// (or an --arg=value form of it).
func hasArg(spec *corev1.PodSpec, arg string) bool {
	for _, c := range spec.Containers {
		for _, a := range append(append([]string{}, c.Command...), c.Args...) {
			if a == arg || strings.HasPrefix(a, arg+"=") {
				return true
			}
		}
	}
	return false
}

// TestDashboardConfigMap: with dashboards.enabled, in any mode, a ConfigMap
// carries the dashboard file byte for byte (as valid JSON) under the label
// Grafana's sidecar selects; it is off by default.
func TestDashboardConfigMap(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards/sendguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := configFile(t)
	for _, tc := range []struct {
		name          string
		args          []string
		want          bool
		label, ns     string
		folder        string
		labelValueSet string
	}{
		{"default: off", nil, false, "", "", "", ""},
		{"injector", []string{"--set", "dashboards.enabled=true"}, true, "grafana_dashboard", ns, "", "1"},
		{"standalone, own label, namespace, folder", []string{"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "standalone.replicas=1",
			"--set", "dashboards.enabled=true", "--set", "dashboards.label=dash", "--set", "dashboards.labelValue=yes",
			"--set", "dashboards.namespace=monitoring", "--set", "dashboards.annotations.grafana_folder=sendguard"}, true, "dash", "monitoring", "sendguard", "yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			o := find(objs, "ConfigMap", "r-sendguard-dashboard")
			if (o != nil) != tc.want {
				t.Fatalf("dashboard ConfigMap rendered %v, want %v: %q", o != nil, tc.want, kinds(objs))
			}
			if o == nil {
				return
			}
			cm := o.Typed.(*corev1.ConfigMap)
			if cm.Labels[tc.label] != tc.labelValueSet || cm.Namespace != tc.ns || cm.Annotations["grafana_folder"] != tc.folder {
				t.Errorf("dashboard ConfigMap in %q, labels %v, annotations %v; want %s=%q in %q, folder %q", cm.Namespace, cm.Labels, cm.Annotations, tc.label, tc.labelValueSet, tc.ns, tc.folder)
			}
			got := cm.Data["sendguard.json"]
			if got != strings.TrimRight(string(raw), "\n") || !json.Valid([]byte(got)) {
				t.Errorf("dashboard ConfigMap's sendguard.json differs from dashboards/sendguard.json (or is not JSON): %d bytes, want %d", len(got), len(strings.TrimRight(string(raw), "\n")))
			}
		})
	}
	refused(t, "dashboards", "--set", "dashboards.enabled=true", "--set", "dashboards.label=bad label")
}
