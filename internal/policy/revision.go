package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/sendguard/sendguard/policies"
)

// revisionOf names a policy tree by its content: the first 12 hex digits
// of a SHA-256 over every file walk finds (tree path, length, bytes, in
// walk's order). The same tree gives the same revision wherever it is
// mounted; any edit, a test or a probe included, gives another.
func revisionOf(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := walk(fsys, func(p, file string) error {
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, int64(len(b)), 10))
		h.Write([]byte{0})
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Revision is the revision of the policies in force (see revisionOf); it
// changes with a reload that changed anything.
func (e *Engine) Revision() string { return e.cur.Load().revision }

// EmbeddedRevision is the revision of the policy tree built into the binary.
func EmbeddedRevision() string {
	r, err := revisionOf(policies.FS)
	if err != nil {
		return "unknown"
	}
	return r
}

// DirRevision is the revision of the policy tree in dir as a load would
// name it (see revisionOf), "" dir meaning the embedded tree; for a tree
// that may not load, such as a refused reload's. It reads dir as Reload
// does (os.Root: links out of the tree are not followed).
func DirRevision(dir string) (string, error) {
	if dir == "" {
		return EmbeddedRevision(), nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("policies from %s: %w", dir, err)
	}
	defer root.Close()
	return revisionOf(root.FS())
}
