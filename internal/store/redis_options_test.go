package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
	"github.com/sendguard/sendguard/internal/store/storetest"
)

// writeCA writes a CA and a server certificate it signs, valid for the
// name redis.internal only (no IP address), and returns the PEM files.
func writeCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sendguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis.internal"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"redis.internal"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("redis.pem", "CERTIFICATE", leafDER), write("redis.key", "EC PRIVATE KEY", keyDER)
}

// TestRedisTLS: against a redis-server that speaks only TLS, the store
// connects with the CA file and the certificate's name, or with
// insecure_skip_verify; it refuses an unknown CA, a name the certificate
// does not carry, and plain TCP.
func TestRedisTLS(t *testing.T) {
	caFile, certFile, keyFile := writeCA(t)
	srv := redistest.StartTLS(t, certFile, keyFile)
	conf := func(ca, name string, insecure bool) *tls.Config {
		c, err := store.RedisTLS(ca, name, insecure)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"ca_file and server_name", conf(caFile, "redis.internal", false), true},
		{"insecure_skip_verify", conf("", "", true), true},
		{"ca_file, name not in the certificate", conf(caFile, "", false), false},
		{"system roots", conf("", "redis.internal", false), false},
		{"plain TCP", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr(), Prefix: "tls:", Timeout: time.Second, TLS: tc.tls})
			if !tc.ok {
				if err == nil {
					r.Close()
					t.Fatalf("NewRedis over %s = ok, want an error", tc.name)
				}
				t.Logf("NewRedis over %s: %v", tc.name, err)
				return
			}
			if err != nil {
				t.Fatalf("NewRedis over %s: %v", tc.name, err)
			}
			defer r.Close()
			if out, err := r.Take(context.Background(), "متجر "+tc.name, limiter.Limits{Daily: 1, Monthly: 1, Rate: 1, Burst: 1}, storetest.Base); err != nil || out.Verdict != limiter.Allowed {
				t.Errorf("Take over %s = %+v, %v; want allowed", tc.name, out, err)
			}
		})
	}
	if _, err := store.RedisTLS(filepath.Join(t.TempDir(), "missing.pem"), "", false); err == nil {
		t.Error("RedisTLS(missing CA file) = ok, want an error")
	}
	if _, err := store.RedisTLS(keyFile, "", false); err == nil {
		t.Error("RedisTLS(a key file as CA) = ok, want an error")
	}
}

// TestRedisWaitReplicas: with wait_replicas 1, every write on a server
// with no replica fails (the decision fails closed) within the timeout
// while reads still answer; on a master with a replica (Sentinel) and on a
// cluster whose masters have one, writes succeed.
func TestRedisWaitReplicas(t *testing.T) {
	ctx := context.Background()
	q := limiter.Limits{Daily: 10, Monthly: 10, Rate: 10, Burst: 10}
	t.Run("no replica", func(t *testing.T) {
		srv := redistest.Start(t)
		r, err := store.NewRedis(ctx, store.RedisOptions{Addr: srv.Addr(), Prefix: "w:", Timeout: 100 * time.Millisecond, WaitReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		writes := map[string]func() error{
			"Take":           func() error { _, err := r.Take(ctx, "i", q, storetest.Base); return err },
			"PutSuppression": func() error { return r.PutSuppression(ctx, store.Suppression{Instance: "i", Phone: "+966501234567"}) },
			"SetPaused":      func() error { return r.SetPaused(ctx, "i", true) },
		}
		for name, write := range writes {
			start := time.Now()
			err := write()
			if err == nil || time.Since(start) > envoyTimeout {
				t.Errorf("%s with wait_replicas 1 and no replica = %v after %v, want an error within %v", name, err, time.Since(start), envoyTimeout)
			}
		}
		if _, err := r.Suppressed(ctx, "i", "+966501234567"); err != nil {
			t.Errorf("Suppressed (a read) with wait_replicas 1 and no replica: %v", err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		s := redistest.StartSentinel(t)
		r := openSentinel(t, s, store.RedisOptions{Prefix: "w:", Timeout: exactTimeout, WaitReplicas: 1})
		defer r.Close()
		if out, err := r.Take(ctx, "متجر", q, storetest.Base); err != nil || out.Verdict != limiter.Allowed {
			t.Errorf("Take with wait_replicas 1 on a master with a replica = %+v, %v; want allowed", out, err)
		}
		if err := r.PutSuppression(ctx, store.Suppression{Instance: "متجر", Phone: "+966501234567"}); err != nil {
			t.Errorf("PutSuppression with wait_replicas 1 on a master with a replica: %v", err)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 1)
		r := openCluster(t, c, store.RedisOptions{Prefix: "w:", Timeout: exactTimeout, WaitReplicas: 1})
		defer r.Close()
		for _, inst := range []string{"shop", "متجر", "दुकान", "🛍️"} {
			if out, err := r.Take(ctx, inst, q, storetest.Base); err != nil || out.Verdict != limiter.Allowed {
				t.Errorf("Take(%q) with wait_replicas 1 on a cluster = %+v, %v; want allowed", inst, out, err)
			}
		}
	})
}
