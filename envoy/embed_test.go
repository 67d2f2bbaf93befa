package envoy

import (
	"strings"
	"testing"
)

func TestRenderDefaultsIsSidecar(t *testing.T) {
	got, err := Render(Defaults, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got != Sidecar {
		t.Errorf("Render(Defaults) differs from sidecar.yaml")
	}
}

// Ports that swap with other defaults are rewritten once, not chained
// (10000 -> 9191 must not then become the gRPC port).
func TestRenderSinglePass(t *testing.T) {
	p := Ports{Listen: 9191, GRPC: 10000, Sender: 9901, Webhook: 8080, Admin: 8081}
	got, err := Render(p, Options{ListenAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"{address: 127.0.0.1, port_value: 9191}", // listener
		"{address: 127.0.0.1, port_value: 8081}", // Envoy admin
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Render(%+v) lacks %q", p, want)
		}
	}
	if strings.Contains(got, "0.0.0.0") {
		t.Errorf("Render with ListenAddress still binds 0.0.0.0")
	}
	// The three clusters, in file order: sendguard, webhook, sender.
	var ports []string
	for _, line := range strings.Split(got, "\n") {
		if i := strings.Index(line, "port_value: "); i >= 0 {
			ports = append(ports, strings.TrimSpace(strings.TrimRight(line[i+len("port_value: "):], "} ")))
		}
	}
	want := []string{"8081", "9191", "10000", "8080", "9901"}
	if strings.Join(ports, ",") != strings.Join(want, ",") {
		t.Errorf("Render(%+v) ports = %v, want %v", p, ports, want)
	}
}

func TestRenderRefusesBadPorts(t *testing.T) {
	for _, p := range []Ports{
		{},
		{Listen: 0, GRPC: 9191, Sender: 8080, Webhook: 8081, Admin: 9901},
		{Listen: 10000, GRPC: 9191, Sender: 65536, Webhook: 8081, Admin: 9901},
		{Listen: 10000, GRPC: -1, Sender: 8080, Webhook: 8081, Admin: 9901},
	} {
		if _, err := Render(p, Options{}); err == nil {
			t.Errorf("Render(%+v) = nil error, want one", p)
		}
	}
}
