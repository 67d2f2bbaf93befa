package decision

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrPanic is wrapped by the error Decide returns when a step of the
// decision panicked (a bug, or a dependency that broke its contract). The
// request is not decided and the caller fails closed, as for any error;
// the process and every other request carry on.
var ErrPanic = errors.New("decision panicked")

// PanicError is the error Decide returns for a recovered panic: the
// panic's value and the stack of the goroutine that panicked, for the log.
// errors.Is(err, ErrPanic) holds for it.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("decision panicked: %v", e.Value) }

// Unwrap makes errors.Is(err, ErrPanic) true, and reaches the panic value
// when it was itself an error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// recovered turns a recovered panic value p into Decide's answer: res as
// it stood (its ID kept, or a fresh one when the panic came before it was
// set) and a *PanicError.
func (d *Decider) recovered(p any, res Result) (Result, error) {
	if res.ID == "" {
		res = Result{ID: d.opts.NewID()}
	}
	return res, &PanicError{Value: p, Stack: debug.Stack()}
}
