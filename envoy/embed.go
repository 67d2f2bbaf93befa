// Package envoy holds the Envoy sidecar configuration (sidecar.yaml) and
// renders it with a pod's or a test's ports, so the file in the repository,
// the end-to-end tests and the Kubernetes injector share one source.
package envoy

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Sidecar is sidecar.yaml as committed: ports are the defaults of
// `make run` (see Defaults).
//
//go:embed sidecar.yaml
var Sidecar string

// Ports are the ports sidecar.yaml refers to.
type Ports struct {
	Listen  int // the listener clients (and a Service) reach; default 10000
	GRPC    int // sendguard's ext_authz gRPC port; default 9191
	Sender  int // the protected sender; default 8080
	Webhook int // the customer's inbound-message webhook; default 8081
	Admin   int // Envoy's admin interface (bound to 127.0.0.1); default 9901
}

// Defaults are the ports written in sidecar.yaml.
var Defaults = Ports{Listen: 10000, GRPC: 9191, Sender: 8080, Webhook: 8081, Admin: 9901}

// Options adjust Render beyond ports.
type Options struct {
	// ListenAddress replaces the listener's 0.0.0.0 when not empty (tests
	// bind to 127.0.0.1).
	ListenAddress string
}

var portValue = regexp.MustCompile(`port_value: ([0-9]+)\b`)

// Render returns sidecar.yaml with each default port replaced by the one in
// p, in a single pass (a new port equal to another default is never
// rewritten twice). Every port must be in 1..65535, and each default must
// appear in sidecar.yaml exactly once: an edit that breaks that is an
// error, not a silently wrong config.
func Render(p Ports, o Options) (string, error) {
	to, count := map[string]int{}, map[string]int{}
	for _, m := range portValue.FindAllStringSubmatch(Sidecar, -1) {
		count[m[1]]++
	}
	for _, r := range []struct {
		name     string
		def, new int
	}{
		{"listen", Defaults.Listen, p.Listen},
		{"grpc", Defaults.GRPC, p.GRPC},
		{"sender", Defaults.Sender, p.Sender},
		{"webhook", Defaults.Webhook, p.Webhook},
		{"admin", Defaults.Admin, p.Admin},
	} {
		if r.new < 1 || r.new > 65535 {
			return "", fmt.Errorf("envoy: %s port %d: must be 1 to 65535", r.name, r.new)
		}
		if n := count[strconv.Itoa(r.def)]; n != 1 {
			return "", fmt.Errorf("envoy: sidecar.yaml has port_value %d (%s) %d times, want once", r.def, r.name, n)
		}
		to[strconv.Itoa(r.def)] = r.new
	}
	out := portValue.ReplaceAllStringFunc(Sidecar, func(m string) string {
		if n, ok := to[portValue.FindStringSubmatch(m)[1]]; ok {
			return "port_value: " + strconv.Itoa(n)
		}
		return m
	})
	if o.ListenAddress != "" {
		const all = "address: 0.0.0.0"
		if n := strings.Count(out, all); n != 1 {
			return "", fmt.Errorf("envoy: sidecar.yaml has %q %d times, want once", all, n)
		}
		out = strings.Replace(out, all, "address: "+o.ListenAddress, 1)
	}
	return out, nil
}
