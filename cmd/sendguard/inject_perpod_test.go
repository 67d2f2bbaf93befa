package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

// perPodRefusal is the message of testdata/inject/per-pod.in.yaml's
// refusal, as the sendguard binary prints it.
const perPodRefusal = `sendguard: document 2: per-pod limits: Deployment messaging/sender: replicas 3 on sendguard's embedded store gives each pod its own quotas and limits, so an instance could send 3 times its plan: share them through Redis (pod template annotation sendguard.io/store: "redis"), run 1 replica, or accept per-pod limits (pod template annotation sendguard.io/per-pod-limits: "accept")` + "\n"

// TestInjectRefusesPerPodReplicas: `sendguard inject -f` refuses a
// 3-replica sender on the embedded store (exit status 1, the message on
// stderr naming the object and the fixes, nothing on stdout), and injects
// it when its template accepts per-pod limits, or when --per-pod-limits
// (or its variable) accepts them by default.
func TestInjectRefusesPerPodReplicas(t *testing.T) {
	bin := binary(t)
	cmd := exec.Command(bin, append([]string{"inject", "-f", "testdata/inject/per-pod.in.yaml"}, injectFlags...)...)
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("sendguard inject -f per-pod.in.yaml = %v, want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("refused, yet printed %d bytes", stdout.Len())
	}
	if d := cmp.Diff(perPodRefusal, stderr.String()); d != "" {
		t.Errorf("stderr (-want +got):\n%s", d)
	}

	// The opt-in: injected, compared with its golden file.
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"inject", "-f", "testdata/inject/per-pod-accept.in.yaml"}, injectFlags...), noenv, nil, &out, &errb); err != nil {
		t.Fatalf("inject -f per-pod-accept.in.yaml: %v\n%s", err, errb.String())
	}
	got := withoutEnvoyConfig(out.String())
	golden := "testdata/inject/per-pod-accept.golden.yaml"
	if *updateInject {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestInjectRefusesPerPodReplicas -update-inject)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("inject -f per-pod-accept.in.yaml (-%s +got):\n%s", golden, d)
	}
	if strings.Count(got, "name: sendguard-envoy") != 1 || !strings.Contains(got, "sendguard.io/per-pod-limits: accept") {
		t.Errorf("opted-in Deployment not injected once, or its opt-in lost:\n%s", got)
	}

	// The injector's default, by flag and by variable.
	for _, c := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--per-pod-limits", "accept"}, nil},
		{nil, map[string]string{"SENDGUARD_INJECT_PER_POD_LIMITS": "accept"}},
	} {
		var out, errb bytes.Buffer
		args := append(append([]string{"inject", "-f", "testdata/inject/per-pod.in.yaml"}, injectFlags...), c.args...)
		if err := run(context.Background(), args, func(k string) string { return c.env[k] }, nil, &out, &errb); err != nil {
			t.Errorf("run(%q, env %v) = %v, want per-pod limits accepted", c.args, c.env, err)
			continue
		}
		if strings.Count(out.String(), "name: sendguard-envoy") != 1 {
			t.Errorf("run(%q, env %v): Deployment not injected:\n%s", c.args, c.env, out.String())
		}
	}
	var errb2 bytes.Buffer
	if err := run(context.Background(), []string{"inject", "-f", "testdata/inject/per-pod.in.yaml", "--per-pod-limits", "allow"}, noenv, nil, &bytes.Buffer{}, &errb2); err == nil || !strings.Contains(err.Error(), "--per-pod-limits") {
		t.Errorf("--per-pod-limits allow = %v, want refused", err)
	}
}

// TestInjectObjectSelector: `inject serve --object-selector` (or its
// variable) takes the chart's injector.objectSelector as JSON; an empty
// selector selects everything (nil), a bad one stops inject serve before
// it serves.
func TestInjectObjectSelector(t *testing.T) {
	team := labels.Set{"team": "messaging", "app": "مرسل"}
	batch := labels.Set{"team": "messaging", "tier": "batch"}
	other := labels.Set{"app": "sender"}
	for _, tc := range []struct {
		in                string
		nilSel            bool
		team, batch, othr bool
		bad               string
	}{
		{in: "", nilSel: true},
		{in: "{}", nilSel: true},
		{in: `{"matchLabels":{"team":"messaging"}}`, team: true, batch: true},
		{in: `{"matchLabels":{"team":"messaging"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["batch","x"]}]}`, team: true},
		{in: `{"matchExpressions":[{"key":"tier","operator":"In","values":["प्रेषक"]}]}`, bad: "a valid label must be"},
		{in: `{"matchExpressions":[{"key":"team","operator":"DoesNotExist"}]}`, othr: true},
		{in: `{"matchLabel":{"team":"messaging"}}`, bad: "unknown field"},
		{in: `team=messaging`, bad: "invalid character"},
		{in: `{"matchExpressions":[{"key":"team","operator":"Bogus"}]}`, bad: "not a valid label selector operator"},
		{in: `{} {}`, bad: "more than one JSON value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			sel, err := parseObjectSelector(tc.in)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "--object-selector") {
					t.Fatalf("parseObjectSelector(%q) = %v, %v; want an error about %q", tc.in, sel, err, tc.bad)
				}
				var errb bytes.Buffer
				args := append([]string{"inject", "serve", "--tls-cert", "none", "--tls-key", "none"}, injectFlags...)
				if err := run(context.Background(), append(args, "--object-selector", tc.in), noenv, nil, io.Discard, &errb); err == nil || !strings.Contains(err.Error(), "--object-selector") {
					t.Errorf("inject serve --object-selector %q = %v, want it refused", tc.in, err)
				}
				env := map[string]string{"SENDGUARD_INJECT_OBJECT_SELECTOR": tc.in}
				if err := run(context.Background(), args, func(k string) string { return env[k] }, nil, io.Discard, &errb); err == nil || !strings.Contains(err.Error(), "--object-selector") {
					t.Errorf("inject serve with SENDGUARD_INJECT_OBJECT_SELECTOR=%q = %v, want it refused", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseObjectSelector(%q) = %v", tc.in, err)
			}
			if (sel == nil) != tc.nilSel {
				t.Fatalf("parseObjectSelector(%q) = %v, want nil %v", tc.in, sel, tc.nilSel)
			}
			if sel == nil {
				return
			}
			for _, c := range []struct {
				set  labels.Set
				want bool
			}{{team, tc.team}, {batch, tc.batch}, {other, tc.othr}} {
				if got := sel.Matches(c.set); got != c.want {
					t.Errorf("parseObjectSelector(%q).Matches(%v) = %v, want %v", tc.in, c.set, got, c.want)
				}
			}
		})
	}
}
