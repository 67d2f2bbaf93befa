package chart

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A Redis Cluster and a Sentinel group as the chart wires them: the
// rendered sendguard.yaml loads with sendguard's own config loader and
// names the seeds or the Sentinels, TLS and wait_replicas as set; the
// Sentinels' password and the CA reach the pod; nothing bundled renders.
func TestRedisClusterAndSentinel(t *testing.T) {
	cfg := configFile(t)
	base := []string{"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "standalone.replicas=3", "--set", "redis.passwordSecret=ext"}
	t.Run("cluster", func(t *testing.T) {
		objs := render(t, append(slices.Clone(base),
			"--set", "redis.addrs={redis-0.redis:6379,redis-1.redis:6379,redis-2.redis:6379}",
			"--set", "redis.tls.caSecret=redis-ca", "--set", "redis.tls.serverName=redis.internal", "--set", "redis.waitReplicas=1")...)
		if find(objs, "StatefulSet", "") != nil {
			t.Errorf("redis.addrs rendered a bundled Redis: %q", kinds(objs))
		}
		r := loadRendered(t, objs).Store.Redis
		if want := []string{"redis-0.redis:6379", "redis-1.redis:6379", "redis-2.redis:6379"}; !slices.Equal(r.Addrs, want) || r.Addr != "" {
			t.Errorf("rendered store.redis addr %q, addrs %q; want addrs %q", r.Addr, r.Addrs, want)
		}
		if !r.TLS.On() || r.TLS.CAFile != "/etc/sendguard-redis-ca/ca.crt" || r.TLS.ServerName != "redis.internal" || r.WaitReplicas != 1 {
			t.Errorf("rendered store.redis tls %+v, wait_replicas %d", r.TLS, r.WaitReplicas)
		}
		d := find(objs, "Deployment", release+"-sendguard")
		if d == nil {
			t.Fatal("no sendguard Deployment")
		}
		spec := d.PodSpec()
		mounted := false
		for _, m := range spec.Containers[0].VolumeMounts {
			mounted = mounted || (m.Name == "redis-ca" && m.MountPath == "/etc/sendguard-redis-ca")
		}
		var vol *corev1.Volume
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == "redis-ca" {
				vol = &spec.Volumes[i]
			}
		}
		if !mounted || vol == nil || vol.Secret == nil || vol.Secret.SecretName != "redis-ca" {
			t.Errorf("CA Secret redis-ca mounted %v, volume %+v; want it at /etc/sendguard-redis-ca", mounted, vol)
		}
		if ref := secretRef(spec.Containers[0], "SENDGUARD_REDIS_PASSWORD"); ref == nil || ref.Name != "ext" {
			t.Errorf("SENDGUARD_REDIS_PASSWORD from %+v, want ext/redis-password", ref)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		objs := render(t, append(slices.Clone(base),
			"--set", "redis.sentinel.masterName=mymaster", "--set", "redis.sentinel.addrs={s-0:26379,s-1:26379,s-2:26379}",
			"--set", "redis.sentinel.passwordSecret=sentinel")...)
		r := loadRendered(t, objs).Store.Redis
		if r.Sentinel.MasterName != "mymaster" || !slices.Equal(r.Sentinel.Addrs, []string{"s-0:26379", "s-1:26379", "s-2:26379"}) ||
			r.Sentinel.PasswordEnv != "SENDGUARD_REDIS_SENTINEL_PASSWORD" || r.Addr != "" || r.TLS.On() || r.WaitReplicas != 0 {
			t.Errorf("rendered store.redis = %+v", r)
		}
		d := find(objs, "Deployment", release+"-sendguard")
		if d == nil {
			t.Fatal("no sendguard Deployment")
		}
		if ref := secretRef(d.PodSpec().Containers[0], "SENDGUARD_REDIS_SENTINEL_PASSWORD"); ref == nil || ref.Name != "sentinel" || ref.Key != "sentinel-password" {
			t.Errorf("SENDGUARD_REDIS_SENTINEL_PASSWORD from %+v, want sentinel/sentinel-password", ref)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		refused(t, "addr and cluster: choose one", "--set", "redis.addr=x:1", "--set", "redis.addrs={a:1}")
		refused(t, "bundled and sentinel: choose one", "--set", "redis.bundled=true", "--set", "redis.sentinel.masterName=m", "--set", "redis.sentinel.addrs={s:1}")
		refused(t, "redis.sentinel needs both", "--set", "redis.sentinel.masterName=m")
		refused(t, "redis.tls is for an external Redis", "--set", "redis.bundled=true", "--set", "redis.tls.enabled=true")
		refused(t, "redis.waitReplicas needs a Redis with replicas", "--set", "redis.bundled=true", "--set", "redis.waitReplicas=1")
		refused(t, "addrs", "--set", "redis.addrs={redis-0}")
		refused(t, "waitReplicas", "--set", "redis.addr=x:1", "--set", "redis.waitReplicas=-1")
	})
}

// The console's read-only token reaches the standalone pod from its Secret
// as SENDGUARD_CONSOLE_TOKEN, the variable admin.console_token_env names by
// default; without consoleTokenSecret the pod has no such variable.
func TestConsoleTokenSecret(t *testing.T) {
	cfg := configFile(t)
	base := []string{"--set", "mode=standalone", "--set-file", "config=" + cfg, "--set", "standalone.replicas=1"}
	for _, tc := range []struct {
		name   string
		set    []string
		secret string
	}{
		{"set", []string{"--set", "consoleTokenSecret=console"}, "console"},
		{"unset", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := find(render(t, append(slices.Clone(base), tc.set...)...), "Deployment", release+"-sendguard")
			if d == nil {
				t.Fatal("no sendguard Deployment")
			}
			ref := secretRef(d.PodSpec().Containers[0], "SENDGUARD_CONSOLE_TOKEN")
			switch {
			case tc.secret == "" && ref != nil:
				t.Errorf("SENDGUARD_CONSOLE_TOKEN from %+v without consoleTokenSecret", ref)
			case tc.secret != "" && (ref == nil || ref.Name != tc.secret || ref.Key != "console-token"):
				t.Errorf("SENDGUARD_CONSOLE_TOKEN from %+v, want %s/console-token", ref, tc.secret)
			}
		})
	}
}
