package model

import (
	_ "embed"
	"fmt"
)

// The shipped models, trained by `make model` from internal/model/testdata.
var (
	//go:embed models/inbound.model
	inboundModel []byte
	//go:embed models/outbound.model
	outboundModel []byte
)

// Embedded decodes the shipped model of task. Each call decodes afresh (a
// few milliseconds): callers keep the Model they are given.
func Embedded(task string) (*Model, error) {
	var b []byte
	switch task {
	case Inbound:
		b = inboundModel
	case Outbound:
		b = outboundModel
	default:
		return nil, fmt.Errorf("unknown task %q", task)
	}
	m, err := Load(b)
	if err != nil {
		return nil, fmt.Errorf("embedded %s model: %w", task, err)
	}
	release(b)
	return m, nil
}

// EmbeddedSize is the size in bytes of the shipped model file of task.
func EmbeddedSize(task string) int {
	switch task {
	case Inbound:
		return len(inboundModel)
	case Outbound:
		return len(outboundModel)
	}
	return 0
}
