//go:build race

package risk

// raceEnabled: under the race detector sync.Pool drops a quarter of what is
// put back, so allocation counts of code with pools (the model's and the
// scanner's scratch) vary by about one between runs.
const raceEnabled = true
