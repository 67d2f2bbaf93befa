package envoy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/fakesender"
	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/keys"
)

const injectedConfig = `
accounts:
  - id: demo
    keys:
      - {id: good, sha256: %s}
instances:
  - {id: inst_12345, name: Demo Shop, account: demo, plan: starter}
inbound: {signature: {secret: inject-e2e-secret}} # the injected container has no secret variable
`

// TestInjectedPodEndToEnd runs the two containers the injector adds
// exactly as their specs say (args, env, working directory, ports), with
// the ConfigMap and the emptyDir as local directories, in front of the
// recording fake sender: an allowed send reaches it, a denied one gets the
// documented body and never does, and the embedded store lands in the
// emptyDir.
func TestInjectedPodEndToEnd(t *testing.T) {
	envoyBin := envoyBinary(t)
	sg := sendguardBinary(t)
	dir := t.TempDir()
	senderPort := freePort(t)
	opts := inject.Options{
		Version:        "e2e",
		ListenPort:     int32(freePort(t)),
		GRPCPort:       int32(freePort(t)),
		AdminPort:      int32(freePort(t)),
		EnvoyAdminPort: int32(freePort(t)),
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sender", Namespace: "messaging", Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: int32(senderPort)}}}}},
	}
	got, ok, err := inject.Pod(pod, "", opts)
	if err != nil || !ok {
		t.Fatalf("inject.Pod() = %v, %v", ok, err)
	}
	var sgc, envc corev1.Container
	for _, c := range got.Spec.InitContainers {
		switch c.Name {
		case inject.SendguardContainer:
			sgc = c
		case inject.EnvoyContainer:
			envc = c
		}
	}

	// The volumes, as the kubelet would mount them.
	mounts := map[string]string{}
	for _, v := range got.Spec.Volumes {
		mounts[v.Name] = filepath.Join(dir, v.Name)
		os.MkdirAll(mounts[v.Name], 0o700)
	}
	if err := os.WriteFile(filepath.Join(mounts[inject.ConfigVolume], "sendguard.yaml"), []byte(fmt.Sprintf(injectedConfig, keys.Hash("key-demo"))), 0o600); err != nil {
		t.Fatal(err)
	}
	local := func(c corev1.Container, p string) string {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/") {
				return mounts[m.Name] + strings.TrimPrefix(p, m.MountPath)
			}
		}
		return p
	}

	rec := &fakesender.Recorder{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", senderPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	start := func(c corev1.Container, bin string) {
		args := make([]string, len(c.Args))
		for i, a := range c.Args {
			args[i] = local(c, a)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = local(c, c.WorkingDir)
		cmd.Env = os.Environ()
		for _, e := range c.Env {
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
		logPath := filepath.Join(dir, c.Name+".log")
		out, _ := os.Create(logPath)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("%s log:\n%s", c.Name, tail(b, 3000))
			}
		})
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Native sidecars start in order, each after the previous one's
	// startup probe: sendguard first, then Envoy.
	start(sgc, sg)
	if sgc.StartupProbe == nil || sgc.StartupProbe.HTTPGet == nil {
		t.Fatalf("sendguard has no HTTP startup probe: %+v", sgc.StartupProbe)
	}
	probe := fmt.Sprintf("http://127.0.0.1:%d%s", opts.AdminPort, sgc.StartupProbe.HTTPGet.Path)
	waitUntil("sendguard's startup probe", func() bool { _, err := get(probe); return err == nil })
	if envc.Command[0] != "envoy" {
		t.Fatalf("Envoy command %q, want envoy", envc.Command)
	}
	start(envc, envoyBin)
	listen := fmt.Sprintf("127.0.0.1:%d", opts.ListenPort)
	waitUntil("Envoy's listener", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	post := func(key, body string) (int, []byte) {
		req, _ := http.NewRequest("POST", "http://"+listen+"/api/send-message", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		var resp *http.Response
		// Envoy admits traffic once its health check has seen sendguard
		// serving; until then it fails closed with 503.
		waitUntil("a checked answer", func() bool {
			r, err := http.DefaultClient.Do(req.Clone(req.Context()))
			if err != nil {
				return false
			}
			if r.StatusCode == http.StatusServiceUnavailable && r.Header.Get("X-Sendguard-Decision-Id") == "" {
				r.Body.Close()
				req.Body = io.NopCloser(strings.NewReader(body))
				return false
			}
			resp = r
			return true
		})
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := post("", sendBody("inst_12345", recipient, okMessage, "transactional"))
	e, _ := catalog.Lookup(catalog.InvalidAPIKey)
	if want := catalog.Body(catalog.InvalidAPIKey, catalog.Details{}); status != e.Status || !bytes.Equal(body, want) {
		t.Errorf("send without a key = %d %s, want %d %s", status, body, e.Status, want)
	}
	if n := rec.Len(); n != 0 {
		t.Errorf("the sender received %d requests for a denied send", n)
	}
	if status, body := post("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional")); status != http.StatusOK {
		t.Errorf("allowed send = %d %s, want 200 from the sender", status, body)
	}
	if n := rec.Len(); n != 1 {
		t.Errorf("the sender received %d requests, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(mounts[inject.StateVolume], "sendguard.db")); err != nil {
		t.Errorf("the embedded store is not in the emptyDir: %v", err)
	}
}
