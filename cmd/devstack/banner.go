package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// inboundSecret is inbound.signature.secret in cmd/devstack/sendguard.yaml.
const inboundSecret = "demo-inbound-secret"

// inbound is a curl posting an inbound message to the webhook route through
// Envoy, signed with sig (Meta's X-Hub-Signature-256) unless sig is "".
func inbound(from, text, sig string) string {
	body := inboundBody(from, text)
	c := "curl -si -X POST " + envoyURL + "/webhooks/inbound -H 'content-type: application/json'"
	if sig != "" {
		c += " -H 'X-Hub-Signature-256: " + sig + "'"
	}
	return c + " -d '" + body + "'"
}

// sign is Meta's signature of body: "sha256=" + hex HMAC-SHA256.
func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func inboundBody(from, text string) string {
	return `{"instance_id":"inst_12345","from":"` + from + `","message_text":"` + text + `"}`
}

// banner is what devstack prints once the stack is ready: where everything
// listens and curls to paste, each under a comment saying what it shows.
func banner() string {
	const (
		shipped = "Your order #1042 has shipped."
		spam    = "WIN BIG!!! 50% OFF everything today only, use code SAVE50 at bit.ly/deal"
		auth    = "-H 'Authorization: Bearer " + adminToken + "'"
		inst    = adminURL + "/v1/instances/inst_12345"
	)
	send := func(key, instance, phone, message, purpose string) string {
		body := `{"instance_id":"` + instance + `","phone":"` + phone + `","message":"` + message + `"`
		if purpose != "" {
			body += `,"message_purpose":"` + purpose + `"`
		}
		return "curl -si -X POST " + envoyURL + "/api/send-message -H 'Authorization: Bearer " + key +
			"' -H 'content-type: application/json' -d '" + body + "}'"
	}
	var b strings.Builder
	line := func(s ...string) {
		for _, s := range s {
			b.WriteString(s)
		}
		b.WriteByte('\n')
	}
	rule := strings.Repeat("=", 72)
	line()
	line(rule)
	line("sendguard demo stack is up. Ctrl-C stops it.")
	line("  envoy      ", envoyURL, "   (admin ", envoyAdminURL, ")")
	line("  sendguard  gRPC ", grpcAddr, ", admin API ", adminURL, " (token ", adminToken, ")")
	line("  sender     http://", senderAddr, "    (its log lines start with [sender])")
	line(rule)
	line()
	line("# Sends through Envoy. Allowed: 200 from the sender, with x-sendguard-* headers added")
	line(send("demo-key-starter", "inst_12345", "+966501234567", shipped, "transactional"))
	line("# Marketing purpose: 422 message_purpose_not_allowed")
	line(send("demo-key-starter", "inst_12345", "+966501234567", shipped, "marketing"))
	line("# No purpose: 422 message_purpose_required")
	line(send("demo-key-starter", "inst_12345", "+966501234567", shipped, ""))
	line("# Spam sent as transactional: 403 policy_violation")
	line(send("demo-key-starter", "inst_12345", "+966501234567", spam, "transactional"))
	line("# Suppressed recipient: 403 recipient_suppressed")
	line(send("demo-key-starter", "inst_12345", "+966500000000", shipped, "transactional"))
	line("# Paused instance: 423 instance_paused_for_review")
	line(send("demo-key-starter", "inst_paused", "+966501234567", shipped, "transactional"))
	line("# Unknown API key: 401 invalid_api_key")
	line(send("not-a-demo-key", "inst_12345", "+966501234567", shipped, "transactional"))
	line()
	line("# Admin API. Usage of inst_12345 today and this month")
	line("curl -si ", inst, "/usage ", auth)
	line("# Suppress +966501234567 (the allowed send then gets 403), and lift it again")
	line("curl -si -X PUT ", inst, "/suppressions/+966501234567 ", auth, ` -H 'content-type: application/json' -d '{"reason":"manual_block"}'`)
	line("curl -si -X DELETE ", inst, "/suppressions/+966501234567 ", auth)
	line("# Pause inst_12345 (sends then get 423), and resume it")
	line("curl -si -X POST ", inst, "/pause ", auth)
	line("curl -si -X POST ", inst, "/resume ", auth)
	line()
	line("# Inbound webhook through Envoy (no webhook runs behind it in the demo, so Envoy")
	line("# answers 503 after sendguard has looked). A STOP signed with inbound.signature's")
	line("# secret, as Meta signs (printf %s \"$body\" | openssl dgst -sha256 -hmac ", inboundSecret, "),")
	line("# suppresses +966501234567: the allowed send above then gets 403 recipient_suppressed")
	line(inbound("+966501234567", "STOP", sign(inboundSecret, inboundBody("+966501234567", "STOP"))))
	line("# A forged START, unsigned or badly signed, is forwarded but not recorded: still 403")
	line(inbound("+966501234567", "START", ""))
	line(inbound("+966501234567", "START", sign("not-the-secret", inboundBody("+966501234567", "START"))))
	line("# The signed START lifts it")
	line(inbound("+966501234567", "START", sign(inboundSecret, inboundBody("+966501234567", "START"))))
	line()
	return b.String()
}

// policiesBanner tells how to change the policies dir (the served
// directory; "" for the embedded ones) while the stack runs.
func policiesBanner(dir string) string {
	rev := "curl -s " + adminURL + "/v1/revision -H 'Authorization: Bearer " + adminToken + "'"
	if dir == "" {
		return "# sendguard serves the policies embedded in its binary (-policies \"\"); what is in force:\n" + rev + "\n\n"
	}
	return "# sendguard serves the policies in " + dir + "/ and watches them and the config: edit, run\n" +
		"# `make test-policies` (opa fmt, check and test) and\n" +
		"# `./bin/sendguard config check --config cmd/devstack/sendguard.yaml --policies " + dir + "`,\n" +
		"# save, and within 5 s (reload.watch_interval) the edit is live, or refused and logged while the\n" +
		"# running policies stay. The revisions in force, and the last refused one with its error:\n" +
		rev + "\n\n"
}
