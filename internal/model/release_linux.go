package model

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// release tells the kernel that the whole pages of b, an embedded model
// file already decoded, are not needed. They are clean pages mapped from
// the executable (nothing writes to an embedded file), so the kernel may
// drop them at any time and reads them back from the file if b is decoded
// again. Decoding touched all of them, and until the kernel reclaims them
// they count in the process's resident memory (about 6 MB for the two
// models, beside their decoded weights). Errors are ignored: this only
// frees memory sooner.
func release(b []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := int((start+page-1)&^(page-1) - start)          // the first whole page
	hi := int((start+uintptr(len(b)))&^(page-1) - start) // the end of the last
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo:hi], unix.MADV_DONTNEED)
}
