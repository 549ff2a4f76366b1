package secret

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Text that holds no secret is masked without an allocation: the broker
// masks every event it records.
func TestMaskAllocatesNothingWithoutASecret(t *testing.T) {
	m := NewMasker("a-long-secret-key", "other-master-key", "short1")
	text := "@386427/rsp/600000001 toggle"
	if !raceOn {
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = m.Mask(text) }))
	}
	assert.Equal(t, "key ****!", m.Mask("key a-long-secret-key!"))
	assert.Equal(t, "x **** y", m.Mask("x short1 y"))
	assert.Equal(t, "nothing", NewMasker("tiny1").Mask("nothing"), "no long secret: no replacer")
}
