package model

// CPUTime is cpuTime for the external test package's benchmarks.
var CPUTime = cpuTime

// RefPredict is refPredict, Predict before its fast path, for the
// external test package.
func (m *Model) RefPredict(text string, dst []float64) []float64 { return m.refPredict(text, dst) }

// RaceEnabled is raceEnabled.
const RaceEnabled = raceEnabled
