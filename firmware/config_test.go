package firmware_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/onenet-hil/hil/firmware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	wifiSecret = "wifi-pass-7f3a"
	keySecret  = "auth-info-9c2e"
)

func sample() firmware.Config {
	return firmware.Config{
		WiFiSSID: "lab", WiFiPassword: wifiSecret, BrokerHost: "192.168.1.20",
		DeviceID: "503367129", ProductID: "386427", Key: keySecret, Topic: "TurnipRobot",
	}
}

func TestConfigJSONFollowsTheContract(t *testing.T) {
	b, err := sample().JSON()
	require.NoError(t, err)
	assert.Equal(t, `{"wifi":{"ssid":"lab","password":"`+wifiSecret+`"},"broker":{"host":"192.168.1.20","port":6002},`+
		`"device_id":"503367129","product_id":"386427","key":"`+keySecret+`","topic":"TurnipRobot","led_pin":4,"keepalive":60}`+"\n",
		string(b))

	c := sample()
	c.BrokerPort, c.LEDPin, c.Keepalive, c.Topic = 1883, 5, 30, ""
	b, err = c.JSON()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, map[string]any{"host": "192.168.1.20", "port": 1883.0}, m["broker"])
	assert.Equal(t, 5.0, m["led_pin"])
	assert.Equal(t, 30.0, m["keepalive"])
	assert.Equal(t, "", m["topic"])

	back, err := firmware.ParseConfig(b)
	require.NoError(t, err)
	assert.Equal(t, c, back)
}

func TestConfigBackoff(t *testing.T) {
	// Absent unless set: a default config.json keeps the contract's shape.
	b, err := sample().JSON()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "backoff_ms")

	for _, c := range []firmware.Config{sample(), studioSample()} {
		c.BackoffMS = 100
		b, err := c.JSON()
		require.NoError(t, err)
		assert.Contains(t, string(b), `,"backoff_ms":100}`)
		back, err := firmware.ParseConfig(b)
		require.NoError(t, err)
		assert.Equal(t, c.WithDefaults(), back)
		assert.Contains(t, c.String(), " backoff_ms=100")
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	cases := map[string]struct {
		edit func(*firmware.Config)
		want string
	}{
		"no device":    {func(c *firmware.Config) { c.DeviceID = "" }, "device_id is required"},
		"no product":   {func(c *firmware.Config) { c.ProductID = " " }, "product_id is required"},
		"no key":       {func(c *firmware.Config) { c.Key = "" }, "key is required"},
		"no host":      {func(c *firmware.Config) { c.BrokerHost = "" }, "broker host is required"},
		"port":         {func(c *firmware.Config) { c.BrokerPort = 70000 }, "broker port 70000"},
		"topic":        {func(c *firmware.Config) { c.Topic = "a/#" }, `topic "a/#"`},
		"pin":          {func(c *firmware.Config) { c.LEDPin = 17 }, "led_pin 17"},
		"keepalive":    {func(c *firmware.Config) { c.Keepalive = -1 }, "keepalive -1"},
		"backoff low":  {func(c *firmware.Config) { c.BackoffMS = 5 }, "backoff_ms 5 is not in 10..30000"},
		"backoff high": {func(c *firmware.Config) { c.BackoffMS = 30001 }, "backoff_ms 30001 is not in 10..30000"},
		"bad password": {func(c *firmware.Config) { c.WiFiPassword = "\xff" + wifiSecret }, "wifi password is not valid UTF-8"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := sample()
			tc.edit(&c)
			_, err := c.JSON()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), wifiSecret)
			assert.NotContains(t, err.Error(), keySecret)
		})
	}
	// Several problems are reported together.
	_, err := firmware.Config{}.JSON()
	require.Error(t, err)
	for _, w := range []string{"broker host", "device_id", "product_id", "key"} {
		assert.Contains(t, err.Error(), w)
	}
}

func TestParseConfigErrorsNameTheProblemNotTheSecret(t *testing.T) {
	good, err := sample().JSON()
	require.NoError(t, err)
	for name, in := range map[string]string{
		"unknown key":   strings.Replace(string(good), `"topic"`, `"topik"`, 1),
		"wrong type":    strings.Replace(string(good), `"led_pin":4`, `"led_pin":"`+keySecret+`"`, 1),
		"broken":        strings.Replace(string(good), `"`+keySecret+`"`, keySecret, 1),
		"trailing text": string(good) + "{}",
		"invalid":       strings.Replace(string(good), `"port":6002`, `"port":-1`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := firmware.ParseConfig([]byte(in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "firmware config")
			assert.NotContains(t, err.Error(), keySecret)
			assert.NotContains(t, err.Error(), wifiSecret)
		})
	}
}

func TestConfigNeverPrintsItsSecrets(t *testing.T) {
	c := sample()
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("flash", "config", c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("flash", "config", c)
	marshalled, err := json.Marshal(struct{ Config firmware.Config }{c})
	require.NoError(t, err)
	for _, s := range []string{
		c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%v", &c),
		logs.String(), string(marshalled),
	} {
		assert.NotContains(t, s, wifiSecret)
		assert.NotContains(t, s, keySecret)
		assert.Contains(t, s, "503367129")
	}
	assert.Equal(t, "device_id=503367129 product_id=386427 key=*** broker=192.168.1.20:6002 topic=TurnipRobot led_pin=4 keepalive=60 wifi=\"lab\" wifi_password=***", c.String())
	assert.Contains(t, string(marshalled), `"key":"***"`)
}

// A token as `hil token` prints it (cmd/hil/token_test.go's Python vector).
const studioToken = "version=2018-10-31&res=products%2F386427%2Fdevices%2Fled-board_01&et=1924992000" +
	"&method=sha256&sign=%2FNonpnljXm4XL8sN71LJ42HHXxRyhXp0oEI93EhlV88%3D"

func studioSample() firmware.Config {
	return firmware.Config{
		WiFiSSID: "lab", WiFiPassword: wifiSecret, BrokerHost: "192.168.1.20",
		DeviceID: "led-board_01", ProductID: "386427", Topic: "led_cmds-1",
		Platform: firmware.Studio, Token: studioToken,
	}
}

func TestStudioConfigJSON(t *testing.T) {
	b, err := studioSample().JSON()
	require.NoError(t, err)
	assert.Equal(t, `{"wifi":{"ssid":"lab","password":"`+wifiSecret+`"},"broker":{"host":"192.168.1.20","port":1883},`+
		`"device_id":"led-board_01","product_id":"386427","topic":"led_cmds-1","led_pin":4,"keepalive":60,`+
		`"platform":"studio","token":"`+studioToken+`"}`+"\n", string(b), "Studio's port, no key, the token as is")
	back, err := firmware.ParseConfig(b)
	require.NoError(t, err)
	assert.Equal(t, studioSample().WithDefaults(), back)
	assert.True(t, back.IsStudio())

	// A product-level token is accepted too; an explicit "legacy" round-trips.
	c := studioSample()
	c.Token = "version=2018-10-31&res=products%2F386427&et=1924992000&method=md5&sign=abc%3D"
	c.BrokerPort, c.Keepalive = 1884, 1800
	_, err = c.JSON()
	assert.NoError(t, err)
	l := sample()
	l.Platform = firmware.Legacy
	b, err = l.JSON()
	require.NoError(t, err)
	assert.Contains(t, string(b), `"platform":"legacy"`)
	back, err = firmware.ParseConfig(b)
	require.NoError(t, err)
	assert.Equal(t, l.WithDefaults(), back)
	assert.False(t, back.IsStudio())
}

func TestStudioConfigRejectsBadValues(t *testing.T) {
	cases := map[string]struct {
		edit func(*firmware.Config)
		want string
	}{
		"no token":            {func(c *firmware.Config) { c.Token = "" }, "token is required"},
		"key pasted as token": {func(c *firmware.Config) { c.Token = keySecret }, "token: want exactly one version="},
		"other device":        {func(c *firmware.Config) { c.DeviceID = "other" }, `token: res "products/386427/devices/led-board_01" is not`},
		"bad et":              {func(c *firmware.Config) { c.Token = strings.Replace(studioToken, "et=1924992000", "et=soon", 1) }, "et is not unix seconds"},
		"spaces":              {func(c *firmware.Config) { c.Token = studioToken + " " }, "spaces or quotes"},
		"broken escape":       {func(c *firmware.Config) { c.Token = studioToken + "%zz" }, "not a url query"},
		"keepalive low":       {func(c *firmware.Config) { c.Keepalive = 5 }, "keepalive 5 is not in 10..1800"},
		"keepalive high":      {func(c *firmware.Config) { c.Keepalive = 1801 }, "keepalive 1801 is not in 10..1800"},
		"topic":               {func(c *firmware.Config) { c.Topic = "a.b" }, `topic "a.b": OneNET Studio topics`},
		"platform":            {func(c *firmware.Config) { c.Platform = "Studio" }, `platform "Studio": want "legacy" or "studio"`},
		"token on legacy":     {func(c *firmware.Config) { c.Platform, c.Key = "", keySecret }, `token is for platform "studio"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := studioSample()
			tc.edit(&c)
			_, err := c.JSON()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			for _, s := range []string{wifiSecret, keySecret, "NonpnljXm4XL8sN71"} {
				assert.NotContains(t, err.Error(), s)
			}
			_, err = firmware.ParseConfig([]byte(strings.Replace(mustJSON(t, studioSample()), studioToken, c.Token, 1)))
			if c.Token != studioToken {
				require.Error(t, err, "ParseConfig validates the same")
				assert.NotContains(t, err.Error(), "NonpnljXm4XL8sN71")
			}
		})
	}
	// Legacy keeps its own rules: '_' is not a legacy topic character.
	l := sample()
	l.Topic = "led_cmds"
	_, err := l.JSON()
	assert.ErrorContains(t, err, "letters, digits and '/' only")
}

func mustJSON(t *testing.T, c firmware.Config) string {
	t.Helper()
	b, err := c.JSON()
	require.NoError(t, err)
	return string(b)
}

func TestStudioConfigNeverPrintsTheToken(t *testing.T) {
	c := studioSample()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("flash", "config", c)
	marshalled, err := json.Marshal(c)
	require.NoError(t, err)
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c), logs.String(), string(marshalled)} {
		assert.NotContains(t, s, "NonpnljXm4XL8sN71")
		assert.NotContains(t, s, wifiSecret)
		assert.Contains(t, s, "led-board_01")
	}
	assert.Equal(t, `device_id=led-board_01 product_id=386427 key= broker=192.168.1.20:1883 topic=led_cmds-1 led_pin=4 keepalive=60 wifi="lab" wifi_password=*** platform=studio token=***`, c.String())
	assert.Contains(t, string(marshalled), `"token":"***"`)
}
