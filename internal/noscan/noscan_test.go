package noscan

import (
	"reflect"
	"testing"
	"unsafe"
)

func TestHasPointers(t *testing.T) {
	type flat struct {
		a [16]byte
		b int64
		c [0]*int // no element: no pointer
	}
	type nested struct {
		f flat
		s [2]struct{ p *int }
	}
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{int64(0), false},
		{[16]byte{}, false},
		{flat{}, false},
		{"", true},
		{[]byte(nil), true},
		{map[int]int(nil), true},
		{(*int)(nil), true},
		{(func())(nil), true},
		{(chan int)(nil), true},
		{unsafe.Pointer(nil), true},
		{nested{}, true},
		{[3]string{}, true},
		{struct{ e error }{}, true},
	} {
		if got := HasPointers(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("HasPointers(%T) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
