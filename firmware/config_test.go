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
