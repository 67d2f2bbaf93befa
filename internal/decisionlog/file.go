package decisionlog

import (
	"fmt"
	"os"
	"strconv"
)

// FileSink writes JSON lines to a file and rotates it by size: before a
// write would take the file past MaxBytes, <path>.<keep-1> becomes
// <path>.<keep> (the oldest is removed), …, <path> becomes <path>.1, and a
// new <path> is started. Lines are never split across files.
type FileSink struct {
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
	buf      []byte
}

// NewFileSink opens (appending) or creates path.
func NewFileSink(path string, maxBytes int64, keep int) (*FileSink, error) {
	if maxBytes <= 0 || keep < 1 {
		return nil, fmt.Errorf("decision log file %s: max size and keep must be positive", path)
	}
	s := &FileSink{path: path, maxBytes: maxBytes, keep: keep}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("decision log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("decision log file: %w", err)
	}
	s.f, s.size = f, fi.Size()
	return nil
}

// Add buffers line, writing first when it would not fit the current file.
func (s *FileSink) Add(line []byte, _ *Record) error {
	if s.size+int64(len(s.buf))+int64(len(line)) > s.maxBytes && s.size+int64(len(s.buf)) > 0 {
		if err := s.Idle(); err != nil {
			return err
		}
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.buf = append(s.buf, line...)
	if len(s.buf) >= 64<<10 {
		return s.Idle()
	}
	return nil
}

// Idle writes the buffered lines.
func (s *FileSink) Idle() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("decision log file: %w", err)
	}
	return nil
}

// Tick writes the buffered lines.
func (s *FileSink) Tick() error { return s.Idle() }

// Close writes the buffered lines, syncs and closes the file.
func (s *FileSink) Close() error {
	err := s.Idle()
	if serr := s.f.Sync(); err == nil && serr != nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("decision log file: %w", err)
	}
	name := func(i int) string { return s.path + "." + strconv.Itoa(i) }
	_ = os.Remove(name(s.keep))
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("decision log rotate: %w", err)
		}
	}
	if err := os.Rename(s.path, name(1)); err != nil {
		return fmt.Errorf("decision log rotate: %w", err)
	}
	return s.open()
}
