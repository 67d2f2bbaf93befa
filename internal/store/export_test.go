package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Crash abandons e as a kill -9 would: the log file and the bbolt file are
// closed with no checkpoint and no fsync, and nothing more is written.
// What write(2) handed to the kernel stays in the files.
func (e *Embedded) Crash() {
	e.close.Do(func() {
		close(e.stop)
		<-e.done
		e.fail(errors.New("crashed"))
		e.syncMu.Lock()
		e.wal.Close()
		e.syncMu.Unlock()
		e.db.Close()
		e.supMu.Lock()
		e.sup.Store(nil)
		e.supMu.Unlock()
		e.closeErr = errors.New("crashed")
	})
}

// Checkpoint runs a checkpoint now.
func (e *Embedded) Checkpoint() error { return e.checkpoint() }

// WALFiles lists the write-ahead log files of the store at path.
func WALFiles(path string) ([]string, error) {
	gens, err := walFiles(path)
	var names []string
	for _, g := range gens {
		names = append(names, walName(path, g))
	}
	return names, err
}

// ReceiptsInFile counts the refund receipts in e's bbolt file.
func ReceiptsInFile(t interface{ Fatal(...any) }, e *Embedded) int {
	var n int
	err := e.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bReceipts).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// SetBeforeWrite makes f run before each write(2) of e's log (with the
// log's write lock held: f must not write to e).
func (e *Embedded) SetBeforeWrite(f func()) {
	e.writeMu.Lock()
	e.beforeWrite = f
	e.writeMu.Unlock()
}

// CloseLogFile closes e's current log file, so that the next write(2)
// fails; call it from a SetBeforeWrite hook.
func (e *Embedded) CloseLogFile() { e.wal.Close() }

// ReceiptKeysInFile returns the keys (instance NUL decision id) of the
// refund receipts in e's bbolt file, in the file's order.
func ReceiptKeysInFile(t interface{ Fatal(...any) }, e *Embedded) []string {
	var keys []string
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bReceipts).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
