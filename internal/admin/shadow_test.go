package admin

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/store"
)

// TestShadow: POST and DELETE /v1/instances/{id}/shadow set and clear the
// run-time flag in the store (where the decision reads it), GET reports it,
// and the calls need the token and a known instance.
func TestShadow(t *testing.T) {
	srv, st := newAPI(t)
	ctx := context.Background()
	steps := []struct {
		method, path, token string
		wantCode            int
		wantBody            string
		wantFlag            bool
	}{
		{"GET", "/v1/instances/shop/shadow", "secret", 200, `{"instance_id":"shop","shadow":false,"global":false,"config":false,"runtime":false}`, false},
		{"POST", "/v1/instances/shop/shadow", "", 401, "", false},
		{"POST", "/v1/instances/nope/shadow", "secret", 404, "", false},
		{"POST", "/v1/instances/shop/shadow", "secret", 200, `{"instance_id":"shop","shadow":true,"global":false,"config":false,"runtime":true}`, true},
		{"GET", "/v1/instances/shop/shadow", "secret", 200, `{"instance_id":"shop","shadow":true,"global":false,"config":false,"runtime":true}`, true},
		{"DELETE", "/v1/instances/shop/shadow", "wrong", 401, "", true},
		{"DELETE", "/v1/instances/shop/shadow", "secret", 200, `{"instance_id":"shop","shadow":false,"global":false,"config":false,"runtime":false}`, false},
	}
	for _, s := range steps {
		code, body := call(t, srv, s.method, s.path, s.token, "")
		if code != s.wantCode || s.wantBody != "" && body != s.wantBody+"\n" {
			t.Errorf("%s %s = %d %s, want %d %s", s.method, s.path, code, body, s.wantCode, s.wantBody)
		}
		if on, _ := st.Paused(ctx, store.ShadowKey("shop")); on != s.wantFlag {
			t.Errorf("after %s %s: stored shadow flag = %v, want %v", s.method, s.path, on, s.wantFlag)
		}
		if p, _ := st.Paused(ctx, "shop"); p {
			t.Errorf("after %s %s: the instance is paused", s.method, s.path)
		}
	}
}
