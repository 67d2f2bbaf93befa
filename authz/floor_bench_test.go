package authz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
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
