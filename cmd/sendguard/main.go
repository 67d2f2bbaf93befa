// Command sendguard is the policy enforcer for transactional messaging: an
// Envoy ext_authz v3 gRPC service plus an admin HTTP API.
//
//	sendguard serve --config sendguard.yaml [--policies DIR]
//	sendguard config check --config sendguard.yaml [--policies DIR]
//	sendguard hash-key KEY          (or the key on stdin)
//	sendguard optout classify [--config FILE] < messages.txt
//	sendguard check --config FILE --key KEY < body.json
//	sendguard suppressions import --config FILE --instance ID FILE.csv
//	sendguard model train --task inbound|outbound --data DIR --out FILE
//	sendguard model eval --task inbound|outbound --data DIR [--model FILE]
//	sendguard replay --log FILE [--policies DIR]
//	sendguard version               (or --version)
//
// Every flag falls back to an environment variable (SENDGUARD_CONFIG,
// SENDGUARD_POLICIES, SENDGUARD_LOG_LEVEL, SENDGUARD_GRPC_ADDR,
// SENDGUARD_ADMIN_ADDR).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // quota time zones on machines without a zoneinfo database

	"github.com/sendguard/sendguard/internal/keys"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sendguard:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  sendguard replay --log FILE [--policies DIR] [--sample N]   (what a draft policy would change)
  sendguard version   (or --version: version, commit, build date, policy and model revisions)
  sendguard serve --config FILE [--policies DIR] [--log-level info]
  sendguard config check --config FILE [--policies DIR]
  sendguard hash-key [KEY]   (reads the key from stdin when omitted)
  sendguard optout classify [--config FILE]   (messages on stdin, one per line; JSON lines out)
  sendguard check --config FILE [--key KEY] [-H "Name: value"]... [--method M] [--path P] [--body FILE|-] [--state config|store]
  sendguard inject -f FILE|- [options]   |   sendguard inject serve --tls-cert FILE --tls-key FILE [options]
  sendguard suppressions import --config FILE --instance ID [--reason R] [--skip-bad] FILE.csv|-
  sendguard model train --task inbound|outbound --data DIR|FILE [--data …] --out FILE
  sendguard model eval --task inbound|outbound --data DIR|FILE [--model FILE] [--split test|train|all]
  sendguard version
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		f, err := parseFlags("serve", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, f, getenv, stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return errors.New("unknown config command")
		}
		f, err := parseFlags("config check", args[2:], getenv, stderr)
		if err != nil {
			return err
		}
		return checkConfig(ctx, f, stdout)
	case "hash-key":
		return hashKey(args[1:], stdin, stdout)
	case "check":
		return check(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "optout":
		if len(args) < 2 || args[1] != "classify" {
			fmt.Fprint(stderr, usage)
			return errors.New("unknown optout command")
		}
		return classify(args[2:], getenv, stdin, stdout, stderr)
	case "inject":
		return injectCmd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "suppressions":
		return suppressionsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "model":
		return modelCmd(ctx, args[1:], getenv, stdout, stderr)
	case "replay":
		return replay(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		if len(args) > 1 {
			return errors.New("version takes no arguments")
		}
		return printVersion(stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type flags struct {
	config    string
	policies  string
	logLevel  string
	grpcAddr  string
	adminAddr string
	checkOnly bool // config check: validate, open no state
	readOnly  bool // check --state store: open the store, write no seeds to it
	// storeReset (serve --store-reset, deliberately without an environment
	// variable) moves a damaged embedded store file aside and starts empty.
	storeReset bool
}

func parseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&f.config, "config", env("SENDGUARD_CONFIG", "sendguard.yaml"), "config file (env SENDGUARD_CONFIG)")
	fs.StringVar(&f.policies, "policies", env("SENDGUARD_POLICIES", ""), "Rego policy directory instead of the embedded policies (env SENDGUARD_POLICIES)")
	fs.StringVar(&f.logLevel, "log-level", env("SENDGUARD_LOG_LEVEL", "info"), "debug, info, warn or error (env SENDGUARD_LOG_LEVEL)")
	fs.StringVar(&f.grpcAddr, "grpc-addr", env("SENDGUARD_GRPC_ADDR", ""), "override listen.grpc (env SENDGUARD_GRPC_ADDR)")
	fs.StringVar(&f.adminAddr, "admin-addr", env("SENDGUARD_ADMIN_ADDR", ""), "override listen.admin (env SENDGUARD_ADMIN_ADDR)")
	if name == "serve" {
		fs.BoolVar(&f.storeReset, "store-reset", false, "when the embedded store file is damaged, move it aside and start with empty state (no environment variable: ask by name)")
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return f, nil
}

// hashKey prints the hex SHA-256 of an API key, the form the config stores.
func hashKey(args []string, stdin io.Reader, stdout io.Writer) error {
	var key string
	switch len(args) {
	case 0:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read key: %w", err)
		}
		key = strings.TrimRight(line, "\r\n")
	case 1:
		key = args[0]
	default:
		return errors.New("hash-key takes one key")
	}
	if _, ok := keys.BearerToken("Bearer " + key); !ok {
		return errors.New("a key must be 1 to 512 visible ASCII characters without spaces")
	}
	_, err := fmt.Fprintln(stdout, keys.Hash(key))
	return err
}
