package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/sendguard/sendguard/internal/decision"
)

// noopAuthorization allows every request without reading it: the in-process
// counterpart of the shared harness's no-op floor.
type noopAuthorization struct {
	authv3.UnimplementedAuthorizationServer
}

var noopOK = &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}

func (noopAuthorization) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return noopOK, nil
}

// BenchmarkCheckFloor is BenchmarkCheckAllow's request through a gRPC
// server that allows without deciding (the generated registration and
// codec): the wire's own cost, client and server, for issue 11's goal that
// Check over gRPC cost at most twice the decision plus this.
func BenchmarkCheckFloor(b *testing.B) {
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, noopAuthorization{})
	benchAllowed(b, authv3.NewAuthorizationClient(serveBufconn(b, gs)))
}

// answeringAuthorization allows every request without reading it, with a
// fixed copy of the answer an allowed send gets (the decision id for the
// client, and the decision id, risk score, purpose, phone and instance for
// the sender): the wire's cost of carrying sendguard's answer, which the
// client pays to read whatever decides it.
type answeringAuthorization struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

func (a answeringAuthorization) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return a.resp, nil
}

// BenchmarkCheckFloorAnswer is BenchmarkCheckFloor answering with an
// allowed send's headers (the same response allow builds for the same
// request, once): BenchmarkCheckAllow minus this is what sendguard's
// server adds, reading the request and deciding, beside the wire.
func BenchmarkCheckFloorAnswer(b *testing.B) {
	resp := allow(decision.Result{Send: true, ID: "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b", RiskScore: 0,
		Purpose: "transactional", Phone: recipient, Instance: "inst_12345"})
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, answeringAuthorization{resp: resp})
	benchAllowed(b, authv3.NewAuthorizationClient(serveBufconn(b, gs)))
}

// BenchmarkCheckFloorWorkers is BenchmarkCheckFloor on long-lived workers
// (grpc.NumStreamWorkers(Workers), as serve runs): the floor of
// BenchmarkCheckServe's server configuration.
func BenchmarkCheckFloorWorkers(b *testing.B) {
	gs := grpc.NewServer(grpc.NumStreamWorkers(Workers))
	authv3.RegisterAuthorizationServer(gs, noopAuthorization{})
	benchAllowed(b, authv3.NewAuthorizationClient(serveBufconn(b, gs)))
}

// BenchmarkCheckServe is BenchmarkCheckAllow's request through the server
// as serve builds it (benchServer on ServerOptions): what an allowed send
// costs over the wire in production, client included. Against
// BenchmarkDecideServe (the same decider, no wire) and the floors it is
// issue 11's measure of what Check adds to the decision; bench/check-cost.sh
// counts all four with callgrind.
func BenchmarkCheckServe(b *testing.B) {
	gs := grpc.NewServer(ServerOptions()...)
	benchServer(b).Register(gs)
	benchAllowed(b, authv3.NewAuthorizationClient(serveBufconn(b, gs)))
}

// BenchmarkDecideServe is the decision alone for BenchmarkCheckServe's
// request, on the same kind of decider (benchServer's), in the process.
func BenchmarkDecideServe(b *testing.B) {
	s := benchServer(b)
	in := requestOf(allowedRequest())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res, err := s.decider.Decide(ctx, in); err != nil || !res.Allowed {
			b.Fatal(res, err)
		}
	}
}
