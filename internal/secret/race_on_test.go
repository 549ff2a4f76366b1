//go:build race

package secret

// raceOn: sync.Pool drops some of what it is given under the race detector.
const raceOn = true
