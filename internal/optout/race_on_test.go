//go:build race

package optout

const raceEnabled = true
