package store

// ShadowKey is the name under which every store keeps an instance's
// run-time shadow mode (set and cleared by the admin API): it is kept as
// the instance's pause is (Paused, SetPaused under this name), so it is as
// durable as a pause, and shared by replicas on Redis with the same cache
// invalidation. The NUL byte keeps it apart from every instance id a
// config can hold in practice.
func ShadowKey(instance string) string { return "\x00shadow\x00" + instance }
