//go:build !race

package secret

const raceOn = false
