package firmware

import (
	"fmt"
	"strings"
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
// place of umqtt.simple). Its server stays "183.230.40.39":6002, as in the
// tutorial; the virtual board maps that address to the local broker.
func Tutorial(cfg Config) map[string][]byte {
	src := readAll(tutorialFS, "tutorial")
	out := map[string][]byte{
		"boot.py": replace(src["boot.py"], tutWiFi,
			"sta_if.connect("+PyStr(cfg.WiFiSSID)+","+PyStr(cfg.WiFiPassword)+")"),
		"main.py":   src["main.py"],
		"simple.py": Files()["mqtt.py"],
	}
	m := src["mqtt.py"]
	m = replace(m, tutClientID, "CLIENT_ID = "+PyStr(cfg.DeviceID))
	if cfg.Topic != "" {
		m = replace(m, tutTopic, "TOPIC = "+pyBytes(cfg.Topic))
	}
	m = replace(m, tutUser, "username="+PyStr(cfg.ProductID))
	m = replace(m, tutPassword, "password="+PyStr(cfg.Key))
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

// PyStr renders s as a Python str literal: quotes, backslashes and control
// characters escaped, other text (Chinese SSIDs too) kept as UTF-8 (invalid
// UTF-8 becomes U+FFFD: Python source must be UTF-8). The harness quotes
// board paths with it too.
func PyStr(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// pyBytes renders s as a Python bytes literal (non-ASCII bytes escaped).
func pyBytes(s string) string {
	var b strings.Builder
	b.WriteString(`b"`)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
