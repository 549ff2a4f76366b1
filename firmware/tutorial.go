package firmware

import (
	"fmt"
	"strings"

	"github.com/onenet-hil/hil/internal/pylit"
)

// The tutorial's placeholders, exactly as the seed spells them.
const (
	tutWiFi     = `sta_if.connect('winnerzr','12345678')`
	tutClientID = `CLIENT_ID = "deviceID"`
	tutTopic    = `TOPIC = b"TurnipRobot"`
	tutUser     = `username='productID'`
	tutPassword = `password='APIKey'`
)

// Tutorial returns the tutorial's own program by flash path: its boot.py,
// mqtt.py and main.py with only the placeholders (Wi-Fi SSID and password,
// device ID, product ID, APIKey, and TOPIC when cfg.Topic is set) replaced by
// cfg's values, plus our MQTT client as simple.py (the module it imports in
// place of umqtt.simple) with its other half, mqttio.py. Its server stays "183.230.40.39":6002, as in the
// tutorial; the virtual board maps that address to the local broker.
func Tutorial(cfg Config) map[string][]byte {
	src := readAll(tutorialFS, "tutorial")
	out := map[string][]byte{
		"boot.py": replace(src["boot.py"], tutWiFi,
			"sta_if.connect("+pylit.Str(cfg.WiFiSSID)+","+pylit.Str(cfg.WiFiPassword)+")"),
		"main.py":   src["main.py"],
		"simple.py": Files()["mqtt.py"],
		"mqttio.py": Files()["mqttio.py"],
	}
	m := src["mqtt.py"]
	m = replace(m, tutClientID, "CLIENT_ID = "+pylit.Str(cfg.DeviceID))
	if cfg.Topic != "" {
		m = replace(m, tutTopic, "TOPIC = "+pylit.Encode(cfg.Topic, pylit.SourceBytes))
	}
	m = replace(m, tutUser, "username="+pylit.Str(cfg.ProductID))
	m = replace(m, tutPassword, "password="+pylit.Str(cfg.Key))
	out["mqtt.py"] = m
	return out
}

// replace swaps the one occurrence of old; the embedded sources are fixed,
// so anything else is a build defect (and a test catches it).
func replace(src []byte, old, new string) []byte {
	s := string(src)
	if n := strings.Count(s, old); n != 1 {
		panic(fmt.Sprintf("firmware: tutorial placeholder %q found %d times", old, n))
	}
	return []byte(strings.Replace(s, old, new, 1))
}
