package main

import (
	"bytes"
	"context"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
)

// The vectors below were computed with Python alone, not with our code:
//
//	import base64, hmac, hashlib, urllib.parse
//	def tok(res, key, method, et):
//	    msg = "%d\n%s\n%s\n%s" % (et, method, res, "2018-10-31")
//	    sign = base64.b64encode(hmac.new(base64.b64decode(key), msg.encode(), getattr(hashlib, method)).digest()).decode()
//	    q = lambda s: urllib.parse.quote(s, safe="")
//	    return "version=%s&res=%s&et=%d&method=%s&sign=%s" % (q("2018-10-31"), q(res), et, q(method), q(sign))
//
// (tokenPy below is the same script, for the live cross-check.)
const (
	tokKey     = "c3R1ZGlvLWRldmljZS1rZXktZm9yLWhpbC10ZXN0cw==" // "studio-device-key-for-hil-tests"
	tokProdKey = "cHJvZHVjdC1hY2Nlc3Mta2V5"                     // "product-access-key"
	tokDevRes  = "version=2018-10-31&res=products%2F386427%2Fdevices%2Fled-board_01&et=1924992000"
)

const tokenPy = `import base64, hmac, hashlib, urllib.parse, sys
res, key, method, et = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
msg = "%d\n%s\n%s\n%s" % (et, method, res, "2018-10-31")
sign = base64.b64encode(hmac.new(base64.b64decode(key), msg.encode(), getattr(hashlib, method)).digest()).decode()
q = lambda s: urllib.parse.quote(s, safe="")
print("version=%s&res=%s&et=%d&method=%s&sign=%s" % (q("2018-10-31"), q(res), et, q(method), q(sign)))
`

func runTokenCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	err := runToken(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestTokenVectors(t *testing.T) {
	t.Setenv(keyEnv, "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sha256 device, unix seconds", []string{"--product", "386427", "--device", "led-board_01", "--key", tokKey, "--method", "sha256", "--expires", "1924992000"},
			tokDevRes + "&method=sha256&sign=%2FNonpnljXm4XL8sN71LJ42HHXxRyhXp0oEI93EhlV88%3D"},
		{"sha1 device, RFC 3339", []string{"--product", "386427", "--device", "led-board_01", "--key", tokKey, "--method", "sha1", "--expires", "2031-01-01T00:00:00Z"},
			tokDevRes + "&method=sha1&sign=RSTjLceDX9Kv6i2q3aJD0a%2FJgyM%3D"},
		{"md5 device, RFC 3339 with offset", []string{"--product", "386427", "--device", "led-board_01", "--key", tokKey, "--method", "md5", "--expires", "2031-01-01T08:00:00+08:00"},
			tokDevRes + "&method=md5&sign=Lso1GB81mUXeraG%2BdRfrZw%3D%3D"},
		{"sha256 is the default method; product level", []string{"--product", "386427", "--key", tokProdKey, "--expires", "1924992000"},
			"version=2018-10-31&res=products%2F386427&et=1924992000&method=sha256&sign=TXVLGRvmaXVBMv78DdkxVWmgJjxfRifl75qz5ROSEkE%3D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runTokenCmd(t, nil, tc.args...)
			require.NoError(t, err, errOut)
			assert.Equal(t, tc.want+"\n", out)
			assert.Empty(t, errOut)
		})
	}
}

func TestTokenKeyFromEnvAndDurations(t *testing.T) {
	now := time.Unix(1924992000-3600, 0)
	tokenNow = func() time.Time { return now }
	t.Cleanup(func() { tokenNow = time.Now })

	out, errOut, err := runTokenCmd(t, map[string]string{keyEnv: tokKey},
		"--product", "386427", "--device", "led-board_01", "--expires", "1h")
	require.NoError(t, err, errOut)
	assert.Equal(t, tokDevRes+"&method=sha256&sign=%2FNonpnljXm4XL8sN71LJ42HHXxRyhXp0oEI93EhlV88%3D\n", out)

	// The flag wins over the environment.
	out2, _, err := runTokenCmd(t, map[string]string{keyEnv: tokProdKey},
		"--product", "386427", "--device", "led-board_01", "--key", tokKey, "--expires", "1924992000")
	require.NoError(t, err)
	assert.Equal(t, out, out2)
}

// TestTokenMatchesPython recomputes tokens for the real clock with Python,
// for every method, when python3 is installed.
func TestTokenMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; TestTokenVectors holds the same vectors")
	}
	for _, method := range []string{"md5", "sha1", "sha256"} {
		out, errOut, err := runTokenCmd(t, nil, "--product", "p_1", "--device", "dev-9", "--key", tokKey, "--method", method, "--expires", "720h")
		require.NoError(t, err, errOut)
		q, err := url.ParseQuery(strings.TrimSpace(out))
		require.NoError(t, err)
		et, err := strconv.ParseInt(q.Get("et"), 10, 64)
		require.NoError(t, err)
		assert.InDelta(t, time.Now().Add(720*time.Hour).Unix(), et, 60)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		want, err := exec.CommandContext(ctx, py, "-c", tokenPy, "products/p_1/devices/dev-9", tokKey, method, q.Get("et")).Output()
		cancel()
		require.NoError(t, err)
		assert.Equal(t, string(want), out, method)
	}
}

func TestTokenBadInput(t *testing.T) {
	t.Setenv(keyEnv, "")
	const secret = "c2VjcmV0LWtleS1uZXZlci1wcmludGVk"
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"nothing", nil, []string{"--product (or --user) is required", "a key is required", "$" + keyEnv}},
		{"user and product", []string{"--user", "42", "--product", "1", "--key", secret}, []string{"no --product or --device with it"}},
		{"slash in user", []string{"--user", "4/2", "--key", secret}, []string{`--user "4/2"`}},
		{"bad method", []string{"--product", "1", "--key", secret, "--method", "sha512"}, []string{`"sha512"`, "md5, sha1 or sha256"}},
		{"key not base64", []string{"--product", "1", "--key", secret + "!"}, []string{"key is not base64"}},
		{"bad expiry", []string{"--product", "1", "--key", secret, "--expires", "next year"}, []string{`"next year"`, "RFC 3339", "unix seconds"}},
		{"zero unix", []string{"--product", "1", "--key", secret, "--expires", "0"}, []string{"must be positive"}},
		{"slash in device", []string{"--product", "1", "--device", "a/b", "--key", secret}, []string{`--device "a/b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runTokenCmd(t, nil, tc.args...)
			require.Error(t, err)
			assert.Empty(t, out)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error()+errOut, secret)
		})
	}
	out, errOut, err := runTokenCmd(t, nil, "--product", "1", "--key", secret, "extra")
	assert.Empty(t, out)
	assert.Equal(t, exitError{2}, err, "a stray argument is a usage error")
	assert.Contains(t, errOut, `hil token: unexpected argument "extra"`)
	assert.NotContains(t, errOut, secret)

	// A time in the past still gives a token (to test refusals), with a warning.
	out, errOut, err = runTokenCmd(t, nil, "--product", "386427", "--device", "led-board_01", "--key", tokKey, "--expires", "1764115200")
	require.NoError(t, err)
	assert.Equal(t, "version=2018-10-31&res=products%2F386427%2Fdevices%2Fled-board_01&et=1764115200&method=sha256&sign=lawMROyBEfQCImaqLIb1cjwLXNb8xR3U8syZFSPDBzw%3D\n", out)
	assert.Contains(t, errOut, "expired at 2025-11-26T00:00:00Z")
	assert.NotContains(t, errOut, tokKey)
}

// The command is reachable through the registry, and --help exits 0.
func TestTokenRegistered(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, runMain([]string{"token", "--help"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "usage: hil token")
	stdout.Reset()
	assert.Equal(t, 1, runMain([]string{"token", "--product", "1"}, &stdout, &stderr))
	assert.Empty(t, stdout.String())
}

// --user makes the application API's account token (res=userid/{id},
// version 2022-05-01), the one broker.MakeUserToken makes and the broker
// accepts.
func TestTokenForAnAccount(t *testing.T) {
	out, _, err := runTokenCmd(t, nil, "--user", "420042", "--key", tokKey, "--expires", "1924992000")
	require.NoError(t, err)
	want, err := broker.MakeUserToken("420042", tokKey, "sha256", time.Unix(1924992000, 0))
	require.NoError(t, err)
	assert.Equal(t, want+"\n", out)
	assert.True(t, strings.HasPrefix(out, "version=2022-05-01&res=userid%2F420042&et=1924992000&method=sha256&sign="), out)
}
