package firmware_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onenet-hil/hil/firmware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The files in firmware/tutorial are the seed tutorial's code blocks, byte
// for byte. The seed lives in the shared folder beside the repository.
func TestTutorialSourcesAreTheSeeds(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("..", "..", "shared", "seed", "000_921af53e6c08698a.txt"))
	if os.IsNotExist(err) {
		t.Skip("the shared seed tutorial is not beside this checkout")
	}
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)`(\\w+\\.py)`[：:]\\s*\\n\\s*```python\\n(.*?)```").FindAllSubmatch(seed, -1)
	require.Len(t, blocks, 3)
	for _, b := range blocks {
		ours, err := os.ReadFile(filepath.Join("tutorial", string(b[1])))
		require.NoError(t, err)
		assert.Equal(t, string(b[2]), string(ours), string(b[1]))
	}
}

// changed lists the lines of got that differ from the original of the same
// file (the placeholders are all one line each, so line counts match).
func changed(t *testing.T, name string, got []byte) []string {
	orig, err := os.ReadFile(filepath.Join("tutorial", name))
	require.NoError(t, err)
	a, b := strings.Split(string(orig), "\n"), strings.Split(string(got), "\n")
	require.Len(t, b, len(a), name)
	var out []string
	for i := range a {
		if a[i] != b[i] {
			out = append(out, b[i])
		}
	}
	return out
}

func TestTutorialSubstitutesOnlyThePlaceholders(t *testing.T) {
	cfg := firmware.Config{
		WiFiSSID: "实验室 'lab'", WiFiPassword: `p\a"ss'wd` + "\n", BrokerHost: "127.0.0.1",
		DeviceID: "503367129", ProductID: "386427", Key: `k'ey"\1`, Topic: "TurnipRobot/led",
	}
	files := firmware.Tutorial(cfg)
	require.Len(t, files, 5)
	assert.Equal(t, firmware.Files()["mqtt.py"], files["simple.py"], "our client goes in as simple.py")
	assert.Equal(t, firmware.Files()["mqttio.py"], files["mqttio.py"], "with its other half")
	orig, err := os.ReadFile(filepath.Join("tutorial", "main.py"))
	require.NoError(t, err)
	assert.Equal(t, orig, files["main.py"])
	assert.Equal(t, []string{`    sta_if.connect('实验室 \'lab\'','p\\a"ss\'wd\x0a') #wifi的SSID和密码`},
		changed(t, "boot.py", files["boot.py"]))
	assert.Equal(t, []string{
		`CLIENT_ID = '503367129'`,
		`TOPIC = b"TurnipRobot/led"`,
		`username='386427'`,
		`password='k\'ey"\\1'`,
	}, changed(t, "mqtt.py", files["mqtt.py"]))
	assert.Contains(t, string(files["mqtt.py"]), `SERVER = "183.230.40.39"`, "the tutorial's server stays")

	// Without a custom topic the tutorial keeps its own.
	cfg.Topic = ""
	assert.Len(t, changed(t, "mqtt.py", firmware.Tutorial(cfg)["mqtt.py"]), 3)
	assert.Contains(t, string(firmware.Tutorial(cfg)["mqtt.py"]), `TOPIC = b"TurnipRobot"`)
}
