//go:build race

package broker

// raceOn: the race detector adds allocations of its own.
const raceOn = true
