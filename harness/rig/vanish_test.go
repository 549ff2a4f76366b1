package rig

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/link"
)

// A send that failed as the port went away matches both its own failure
// and link.ErrGone, so callers classify it by type.
func TestGoneAfterMatchesTheFailureAndErrGone(t *testing.T) {
	gone := errors.Join(link.ErrGone, errors.New("serial port /dev/pts/9 went away"))
	err := goneAfter{err: broker.ErrOffline, gone: gone}
	assert.ErrorIs(t, err, link.ErrGone)
	assert.ErrorIs(t, err, broker.ErrOffline)
	assert.Contains(t, err.Error(), "; the board is gone: ")
}
