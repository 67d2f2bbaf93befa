package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/policies"
)

// configMapVolume lays files out as the kubelet's atomic writer does for a
// mounted ConfigMap (each visible name a symlink through ..data to a hidden
// timestamped directory); swap writes a new generation and replaces ..data
// in one rename, then removes the old one.
type configMapVolume struct {
	t        *testing.T
	dir, cur string
	gen      int
}

func newConfigMapVolume(t *testing.T, files map[string][]byte) *configMapVolume {
	v := &configMapVolume{t: t, dir: t.TempDir()}
	v.swap(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *configMapVolume) swap(files map[string][]byte) {
	t := v.t
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2026_11_27_10_%02d_00.%09d", v.gen, v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.cur != "" {
		os.RemoveAll(filepath.Join(v.dir, v.cur))
	}
	v.cur = ts
}

// flatPolicies is the shipped policy tree with ConfigMap keys: every slash
// a dot (sendguard/config/data.json is sendguard.config.data.json).
func flatPolicies(t *testing.T, edit func(name string, src []byte) []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.rego") || (path.Ext(p) != ".rego" && path.Ext(p) != ".json") {
			return err
		}
		src, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		if edit != nil {
			src = edit(p, src)
		}
		ext := path.Ext(p)
		files[strings.ReplaceAll(strings.TrimSuffix(p, ext), "/", ".")+ext] = src
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestReloadOnConfigMapSwap: with the config and the policies mounted as
// ConfigMaps, a kubelet swap of either is noticed by the watcher
// (reload.watch_interval 100ms) and applied as SIGHUP would: a valid policy
// edit changes decisions, a broken config is refused and the running config
// stays, a valid config edit applies (a revoked key is refused at once), and
// a store change is refused (it takes a restart). The reload counter
// and the log say which happened.
func TestReloadOnConfigMapSwap(t *testing.T) {
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(string(raw), "path: .run/sendguard.db", "path: "+filepath.Join(t.TempDir(), "state.db"), 1) + "reload: {watch_interval: 100ms}\n"
	cfgVol := newConfigMapVolume(t, map[string][]byte{"sendguard.yaml": []byte(base)})
	polVol := newConfigMapVolume(t, flatPolicies(t, nil))

	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logw := &syncWriter{w: &bytes.Buffer{}}
	go func() {
		done <- run(ctx, []string{"serve", "--config", filepath.Join(cfgVol.dir, "sendguard.yaml"), "--policies", polVol.dir,
			"--grpc-addr", grpcAddr, "--admin-addr", adminAddr}, noenv, nil, io.Discard, logw)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitServing(t, ctx, healthpb.NewHealthClient(conn), logw.String)
	ac := authv3.NewAuthorizationClient(conn)

	phone := 0
	var decideTo func(key, purpose, to string) string
	decide := func(key, purpose string) string {
		t.Helper()
		phone++
		return decideTo(key, purpose, fmt.Sprintf("+9665012345%02d", phone))
	}
	decideTo = func(key, purpose, to string) string {
		t.Helper()
		body := fmt.Sprintf(`{"instance_id":"inst_12345","phone":%q,"message":"Your order #1042 has shipped.","message_purpose":%q}`, to, purpose)
		resp, err := ac.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
				Headers: map[string]string{"authorization": "Bearer " + key, "content-type": "application/json"}, RawBody: []byte(body)},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() != nil {
			return "allowed"
		}
		b := resp.GetDeniedResponse().GetBody()
		for _, code := range []string{"message_purpose_required", "message_purpose_not_allowed", "revoked_api_key", "invalid_api_key"} {
			if strings.Contains(b, `"`+code+`"`) {
				return code
			}
		}
		return b
	}
	// counter reads sendguard_reloads_total{trigger="watch",result=…}.
	counter := func(result string) string {
		t.Helper()
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		prefix := `sendguard_reloads_total{result="` + result + `",trigger="watch"} `
		for _, l := range strings.Split(string(m), "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				return v
			}
		}
		t.Fatalf("/metrics has no %s…:\n%s", prefix, m)
		return ""
	}
	// waitFor waits (up to 60 s: a reload prepares the policies and runs
	// their probes, and the machine is shared) for the counter.
	waitFor := func(result, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for counter(result) != want {
			if time.Now().After(deadline) {
				t.Fatalf("sendguard_reloads_total{trigger=watch,result=%s} = %s, want %s\n%s", result, counter(result), want, logw.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if got := decide("demo-key-starter", "newsletter"); got != "message_purpose_required" {
		t.Fatalf("before: newsletter = %s, want message_purpose_required", got)
	}
	if counter("applied") != "0" || counter("refused") != "0" {
		t.Fatalf("reloads before any change: applied %s refused %s", counter("applied"), counter("refused"))
	}

	// 1. The policy ConfigMap changes: newsletter becomes a known,
	// forbidden purpose. Sends keep flowing from many goroutines through
	// the swap, in several scripts, to another instance; none is ever
	// answered policy_check_unavailable.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	messages := []string{"طلبك رقم ١٠٤٢ في الطريق 📦", "आपका ऑर्डर #1042 भेज दिया गया है", "Siparişiniz kargoya verildi, İstanbul", "Cafe\u0301 order ready 👍🏽"}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"instance_id":"demo-support-line","phone":"+96650%03d%04d","message":%q,"message_purpose":"newsletter"}`, g, i, messages[(g+i)%len(messages)])
				resp, err := ac.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
					Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
						Headers: map[string]string{"authorization": "Bearer demo-key-starter", "content-type": "application/json"}, RawBody: []byte(body)},
				}}})
				if err != nil {
					t.Error(err)
					return
				}
				// Denied, by the old policies or the new ones (or, once
				// the denials add up, by the auto-pause); never unable
				// to decide.
				b := resp.GetDeniedResponse().GetBody()
				if resp.GetOkResponse() != nil || !strings.HasPrefix(b, `{"success":false,"error":"`) || strings.Contains(b, "policy_check_unavailable") {
					t.Errorf("during the swap: %q (ok %v), want a documented denial", b, resp.GetOkResponse() != nil)
					return
				}
			}
		})
	}
	polVol.swap(flatPolicies(t, func(name string, src []byte) []byte {
		if name == policyData {
			return bytes.Replace(src, []byte(`"known": [`), []byte(`"known": ["newsletter",`), 1)
		}
		return src
	}))
	waitFor("applied", "1")
	close(stop)
	wg.Wait()
	if got := decide("demo-key-starter", "newsletter"); got != "message_purpose_not_allowed" {
		t.Errorf("after the policy swap: newsletter = %s, want message_purpose_not_allowed", got)
	}
	if !strings.Contains(logw.String(), "config or policies changed on disk; reloading") || !strings.Contains(logw.String(), `"trigger":"watch"`) {
		t.Errorf("no watch reload logged:\n%s", logw.String())
	}

	// 2. A broken config: refused, the running config and policies stay.
	cfgVol.swap(map[string][]byte{"sendguard.yaml": []byte(base + "bogus_key: 1\n")})
	waitFor("refused", "1")
	if got := decide("demo-key-starter", "newsletter"); got != "message_purpose_not_allowed" {
		t.Errorf("after a refused config: newsletter = %s, want message_purpose_not_allowed (the reloaded policies)", got)
	}
	if got := decide("demo-key-starter", "transactional"); got != "allowed" {
		t.Errorf("after a refused config: a transactional send = %s, want allowed", got)
	}
	if !strings.Contains(logw.String(), "bogus_key") {
		t.Errorf("the refused reload's log does not name the bad key:\n%s", logw.String())
	}

	// 3. A valid config edit: the starter key revoked, applied at once.
	revoked := strings.Replace(base, "sha256: 3daaab08bf0db4e1e6aabf19c0c2bfcab6021c65969db5ac8ccaae46eec79223\n",
		"sha256: 3daaab08bf0db4e1e6aabf19c0c2bfcab6021c65969db5ac8ccaae46eec79223\n        revoked: true\n", 1)
	if revoked == base {
		t.Fatal("the demo config no longer holds the starter key's hash")
	}
	cfgVol.swap(map[string][]byte{"sendguard.yaml": []byte(revoked)})
	waitFor("applied", "2")
	if got := decide("demo-key-starter", "transactional"); got != "revoked_api_key" {
		t.Errorf("after revoking the key in the config: %s, want revoked_api_key", got)
	}
	if got := decide("demo-key-other", "transactional"); got == "revoked_api_key" || got == "invalid_api_key" {
		t.Errorf("another key after the config reload: %s", got)
	}

	// 4. A store change takes a restart: refused, the revocation stays.
	cfgVol.swap(map[string][]byte{"sendguard.yaml": []byte(strings.Replace(revoked, "type: embedded", "type: memory", 1))})
	waitFor("refused", "2")
	if !strings.Contains(logw.String(), "store changed: that takes a restart") {
		t.Errorf("the store change's refusal is not logged:\n%s", logw.String())
	}
	if got := decide("demo-key-starter", "transactional"); got != "revoked_api_key" {
		t.Errorf("after a refused store change: %s, want revoked_api_key (the running config)", got)
	}
	if got := counter("applied"); got != "2" {
		t.Errorf("applied = %s after two valid changes, want 2", got)
	}

	// 5. A new default region (the phone normaliser is rebuilt): a
	// national number becomes a valid recipient; the key is valid again.
	const national = "0501234599"
	if got := decideTo("demo-key-starter", "transactional", national); got == "allowed" {
		t.Fatalf("a national number without a default region: %s, want a denial", got)
	}
	cfgVol.swap(map[string][]byte{"sendguard.yaml": []byte(strings.Replace(base, "request:\n", "request:\n  default_region: SA\n", 1))})
	waitFor("applied", "3")
	if got := decideTo("demo-key-starter", "transactional", national); got != "allowed" {
		t.Errorf("a national number with default_region SA: %s, want allowed", got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v", err)
	}
}
