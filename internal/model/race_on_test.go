//go:build race

package model

// raceEnabled: the race detector is on (tests thin their samples).
const raceEnabled = true
