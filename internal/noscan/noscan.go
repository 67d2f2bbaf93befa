// Package noscan tells whether a type holds a pointer the garbage
// collector follows. Values of a type that holds none are allocated in
// spans the collector does not scan, so a large structure of them costs a
// mark nothing; tests use it to hold such structures to that.
package noscan

import "reflect"

// HasPointers reports whether a value of type t holds a pointer the
// garbage collector would follow: a pointer, string, slice, map, channel,
// function, interface or unsafe pointer, in t itself or in an element or
// field of it.
func HasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && HasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if HasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
