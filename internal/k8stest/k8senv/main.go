// Command k8senv runs the tests' Kubernetes API server (etcd and
// kube-apiserver on loopback, see internal/k8stest) until interrupted, and
// prints a kubeconfig for it: `make k8s-up`, then in another shell
// `helm --kubeconfig FILE install ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sendguard/sendguard/internal/k8stest"
)

func main() {
	env, err := k8stest.StartEnv(k8stest.BinDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8senv:", err)
		os.Exit(1)
	}
	fmt.Printf("Kubernetes %s API server at %s (admin token %s)\nexport KUBECONFIG=%s\nCtrl-C stops it and removes its data.\n",
		k8stest.Version, env.URL, k8stest.Token, env.Kubeconfig)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	env.Stop()
}
