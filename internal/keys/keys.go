// Package keys resolves API keys to accounts. Keys are never stored: the
// configuration holds the hex SHA-256 of each key, and a request's key is
// hashed and looked up. A Keyring is immutable and safe for concurrent use.
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Key is what a configured API key grants.
type Key struct {
	ID      string // a label for logs, never the key itself
	Account string
	Revoked bool
}

// Entry configures one key for NewKeyring.
type Entry struct {
	SHA256 string // hex, either case
	Key    Key
}

// Keyring maps key hashes to keys.
type Keyring struct{ byHash map[[sha256.Size]byte]Key }

// NewKeyring builds a keyring. Entries whose hash is not 64 hex digits are
// skipped (config validation rejects them first).
func NewKeyring(entries []Entry) *Keyring {
	r := &Keyring{byHash: make(map[[sha256.Size]byte]Key, len(entries))}
	for _, e := range entries {
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(e.SHA256)); err != nil || n != len(h) {
			continue
		}
		r.byHash[h] = e.Key
	}
	return r
}

// Hash returns the hex SHA-256 of key, the form the configuration stores.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Status is the result of a lookup.
type Status uint8

// Lookup results.
const (
	Unknown Status = iota // missing, malformed or not configured
	Valid
	Revoked
)

// Lookup resolves an Authorization header value of the form
// "Bearer <key>" (scheme case-insensitive).
func (r *Keyring) Lookup(authorization string) (Key, Status) {
	key, ok := BearerToken(authorization)
	if !ok {
		return Key{}, Unknown
	}
	k, found := r.byHash[sha256.Sum256([]byte(key))]
	switch {
	case !found:
		return Key{}, Unknown
	case k.Revoked:
		return k, Revoked
	}
	return k, Valid
}

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// value. The token must be non-empty visible ASCII without spaces.
func BearerToken(authorization string) (string, bool) {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimLeft(authorization[len(scheme):], " ")
	if tok == "" || len(tok) > 512 {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", false
		}
	}
	return tok, true
}
