// Package console is sendguard's operator console: server-rendered pages
// on the admin port, under /console/, for the people who answer "my
// messages stopped going out" and "I replied STOP and still get messages"
// without curl.
//
//	GET  /console/                          overview: decisions/s by result, revisions, events
//	GET  /console/signin, POST              sign in with a token, for a cookie
//	POST /console/signout                   sign out
//	GET  /console/recipients?phone=…        one recipient, every instance
//	POST /console/recipients/block          add a manual block (reason required)
//	POST /console/recipients/lift           lift a suppression (reason required)
//	GET  /console/instances/{instance}      plan, usage, bucket, last decisions, top refusals
//	POST /console/instances/{instance}/pause    pause (reason required)
//	POST /console/instances/{instance}/resume   resume (reason required)
//	GET  /console/audit                     every change made in the console
//	GET  /console/static/…                  the stylesheet (embedded)
//
// Sign-in takes the admin token (may change things) or the read-only
// console token (sees everything, changes nothing: no buttons are drawn,
// and a POST is refused 403 whatever it carries). The cookie is HttpOnly,
// SameSite=Strict, Secure when the request came over TLS, holds no token
// (a role, the token's fingerprint, an expiry and a sign-in id, signed
// with a key drawn at start: a restart or a token rotation signs everyone
// out). Every POST carries a CSRF token bound to the cookie; one without
// it, or with another cookie's, is refused 403 and changes nothing.
//
// The pages work without JavaScript (there is none), set a strict
// Content-Security-Policy (default-src 'none', the stylesheet from
// 'self', forms only to 'self'), mask phones unless asked (?full=1) and
// never show an API key. Every change is written to the audit trail
// before it is made (a change that cannot be audited is not made); see
// Audit.
package console
