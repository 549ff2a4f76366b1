package child

import (
	"bufio"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartTalksOverStdinAndStdout(t *testing.T) {
	cmd, in, out, err := Start([]string{"sh", "-c", `read x; echo "got $x $HIL_CHILD_TEST"`}, []string{"HIL_CHILD_TEST=env"})
	require.NoError(t, err)
	_, err = in.Write([]byte("line\n"))
	require.NoError(t, err)
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan(), "a line back: %v", sc.Err())
	assert.Equal(t, "got line env", sc.Text())
	require.NoError(t, cmd.Wait())
}

func TestStartErrors(t *testing.T) {
	_, _, _, err := Start(nil, nil)
	assert.EqualError(t, err, "no command")
	_, _, _, err = Start([]string{"/nonexistent/hil-child"}, nil)
	assert.Error(t, err)
}
