package firmware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/onenet-hil/hil/internal/secret"
)

// Defaults applied by Config.JSON to zero fields.
const (
	DefaultPort       = 6002 // OneNET's legacy MQTT port
	DefaultStudioPort = 1883 // OneNET Studio's MQTT port (mqtts.heclouds.com, no TLS)
	DefaultLEDPin     = 4    // the tutorial's G4
	DefaultKeepalive  = 60   // seconds
)

// Platforms: which OneNET service the firmware logs in to (the two services
// are described in ../broker/README.md, "What OneNET does").
const (
	Legacy = "legacy" // multi-protocol MQTT: password = key; $creq/$crsp/$dp
	Studio = "studio" // OneNET Studio: password = token; $sys/{pid}/{name}/...
)

// Config is the board's config.json (the contract in README.md, "config.json",
// with "platform" and "token" for OneNET Studio). Its String, GoString, LogValue
// and MarshalJSON mask the Wi-Fi password, the key and the token; only JSON
// renders them, for the board's flash.
type Config struct {
	WiFiSSID     string
	WiFiPassword string // secret
	BrokerHost   string
	BrokerPort   int    // 0: DefaultPort (legacy) or DefaultStudioPort (studio)
	DeviceID     string // MQTT client id (legacy 设备ID; studio: the device name)
	ProductID    string // MQTT user name (产品ID)
	Key          string // secret, legacy: the device's auth_info or the product's APIKey
	Topic        string // custom topic to subscribe to; "" for none
	LEDPin       int    // 0: DefaultLEDPin (GPIO0 is a boot strap pin, never the LED)
	Keepalive    int    // seconds; 0: DefaultKeepalive
	Platform     string // Legacy (or "") or Studio
	Token        string // secret, studio: the MQTT password (see `hil token`)
	// BackoffMS is the first reconnect delay in ms (doubling to the 30 s
	// cap); 0 leaves it out of config.json and the firmware waits 1000.
	// The harness shortens it on the virtual board, where waiting for a
	// real network buys nothing.
	BackoffMS int
}

// wire is config.json's shape; field order is the contract's.
type wire struct {
	WiFi struct {
		SSID     string `json:"ssid"`
		Password string `json:"password"`
	} `json:"wifi"`
	Broker struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"broker"`
	DeviceID  string `json:"device_id"`
	ProductID string `json:"product_id"`
	Key       string `json:"key,omitempty"` // always set on legacy
	Topic     string `json:"topic"`
	LEDPin    int    `json:"led_pin"`
	Keepalive int    `json:"keepalive"`
	// Studio's additions; absent from a legacy config.json.
	Platform string `json:"platform,omitempty"`
	Token    string `json:"token,omitempty"`
	// Optional on both platforms; absent means 1000.
	BackoffMS int `json:"backoff_ms,omitempty"`
}

// Topic names: legacy letters, digits and '/'; studio also '_' and '-'.
var (
	topicRE       = regexp.MustCompile(`^[A-Za-z0-9/]+$`)
	studioTopicRE = regexp.MustCompile(`^[A-Za-z0-9/_-]+$`)
)

// Backoff bounds, ms: the firmware's default and cap are 1000 and 30000.
const (
	DefaultBackoffMS = 1000
	minBackoffMS     = 10
	maxBackoffMS     = 30000
)

// Studio keepalive bounds (the platform refuses others).
const (
	studioMinKeepalive = 10
	studioMaxKeepalive = 1800
)

// IsStudio reports whether c logs in to OneNET Studio.
func (c Config) IsStudio() bool { return c.Platform == Studio }

// WithDefaults returns c with its zero port, LED pin and keepalive filled in.
func (c Config) WithDefaults() Config {
	if c.BrokerPort == 0 {
		c.BrokerPort = DefaultPort
		if c.IsStudio() {
			c.BrokerPort = DefaultStudioPort
		}
	}
	if c.LEDPin == 0 {
		c.LEDPin = DefaultLEDPin
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	return c
}

// Validate reports every problem with c (after defaults) in one error. The
// messages name fields, never secret values.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	need := func(v, name string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need(c.BrokerHost, "broker host")
	need(c.DeviceID, "device_id")
	need(c.ProductID, "product_id")
	switch c.Platform {
	case "", Legacy:
		need(c.Key, "key")
		if c.Token != "" {
			errs = append(errs, errors.New(`token is for platform "studio"; legacy logs in with key`))
		}
	case Studio:
		need(c.Token, "token")
		if c.Token != "" {
			if err := checkToken(c.Token, c.ProductID, c.DeviceID); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		errs = append(errs, fmt.Errorf("platform %q: want %q or %q", c.Platform, Legacy, Studio))
	}
	for _, f := range []struct{ name, v string }{
		{"wifi ssid", c.WiFiSSID}, {"wifi password", c.WiFiPassword}, {"broker host", c.BrokerHost},
		{"device_id", c.DeviceID}, {"product_id", c.ProductID}, {"key", c.Key}, {"topic", c.Topic},
		{"token", c.Token},
	} {
		if !utf8.ValidString(f.v) {
			errs = append(errs, fmt.Errorf("%s is not valid UTF-8", f.name))
		}
	}
	if c.BrokerPort < 1 || c.BrokerPort > 65535 {
		errs = append(errs, fmt.Errorf("broker port %d is not in 1..65535", c.BrokerPort))
	}
	switch {
	case c.Topic == "":
	case c.IsStudio() && !studioTopicRE.MatchString(c.Topic):
		errs = append(errs, fmt.Errorf("topic %q: OneNET Studio topics are letters, digits, '/', '_' and '-' only", c.Topic))
	case !c.IsStudio() && !topicRE.MatchString(c.Topic):
		errs = append(errs, fmt.Errorf("topic %q: OneNET topics are letters, digits and '/' only", c.Topic))
	}
	if c.LEDPin < 1 || c.LEDPin > 16 {
		errs = append(errs, fmt.Errorf("led_pin %d is not an ESP8266 GPIO (1..16)", c.LEDPin))
	}
	if c.IsStudio() && (c.Keepalive < studioMinKeepalive || c.Keepalive > studioMaxKeepalive) {
		errs = append(errs, fmt.Errorf("keepalive %d is not in %d..%d s (OneNET Studio)", c.Keepalive, studioMinKeepalive, studioMaxKeepalive))
	} else if c.Keepalive < 1 || c.Keepalive > 65535 {
		errs = append(errs, fmt.Errorf("keepalive %d is not in 1..65535 s", c.Keepalive))
	}
	if c.BackoffMS != 0 && (c.BackoffMS < minBackoffMS || c.BackoffMS > maxBackoffMS) {
		errs = append(errs, fmt.Errorf("backoff_ms %d is not in %d..%d (0: the firmware's %d)", c.BackoffMS, minBackoffMS, maxBackoffMS, DefaultBackoffMS))
	}
	return errors.Join(errs...)
}

// JSON renders config.json for the board, defaults applied. It is the only
// rendering that contains the secrets.
func (c Config) JSON() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("firmware config: %w", err)
	}
	return encode(c.WithDefaults().wire())
}

func (c Config) wire() wire {
	var w wire
	w.WiFi.SSID, w.WiFi.Password = c.WiFiSSID, c.WiFiPassword
	w.Broker.Host, w.Broker.Port = c.BrokerHost, c.BrokerPort
	w.DeviceID, w.ProductID, w.Key = c.DeviceID, c.ProductID, c.Key
	w.Topic, w.LEDPin, w.Keepalive = c.Topic, c.LEDPin, c.Keepalive
	w.Platform, w.Token, w.BackoffMS = c.Platform, c.Token, c.BackoffMS
	return w
}

func encode(w wire) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseConfig reads a config.json (unknown keys are an error) and validates
// it. Errors never quote a secret.
func ParseConfig(data []byte) (Config, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Config{}, fmt.Errorf("firmware config: %s", scrub(err))
	}
	if dec.More() {
		return Config{}, errors.New("firmware config: text after the JSON object")
	}
	c := Config{
		WiFiSSID: w.WiFi.SSID, WiFiPassword: w.WiFi.Password,
		BrokerHost: w.Broker.Host, BrokerPort: w.Broker.Port,
		DeviceID: w.DeviceID, ProductID: w.ProductID, Key: w.Key,
		Topic: w.Topic, LEDPin: w.LEDPin, Keepalive: w.Keepalive,
		Platform: w.Platform, Token: w.Token, BackoffMS: w.BackoffMS,
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("firmware config: %w", err)
	}
	return c, nil
}

// scrub keeps a JSON decoding error's position and field but not the value
// it choked on (which may be a secret).
func scrub(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be a JSON %s, not %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// String shows the configuration with the password and key masked.
func (c Config) String() string {
	c = c.WithDefaults()
	s := fmt.Sprintf("device_id=%s product_id=%s key=%s broker=%s:%d topic=%s led_pin=%d keepalive=%d wifi=%q wifi_password=%s",
		c.DeviceID, c.ProductID, secret.Redact(c.Key), c.BrokerHost, c.BrokerPort, c.Topic, c.LEDPin, c.Keepalive,
		c.WiFiSSID, secret.Redact(c.WiFiPassword))
	if c.Platform != "" || c.Token != "" {
		s += fmt.Sprintf(" platform=%s token=%s", c.Platform, secret.Redact(c.Token))
	}
	if c.BackoffMS != 0 {
		s += fmt.Sprintf(" backoff_ms=%d", c.BackoffMS)
	}
	return s
}

// GoString keeps %#v from printing the secrets.
func (c Config) GoString() string { return "firmware.Config{" + c.String() + "}" }

// LogValue keeps log/slog (text and JSON handlers) from printing the secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON renders config.json's shape with the secrets masked, so a
// report or log that embeds a Config cannot leak them. Use JSON for the board.
func (c Config) MarshalJSON() ([]byte, error) {
	w := c.wire()
	w.WiFi.Password, w.Key, w.Token = secret.Redact(w.WiFi.Password), secret.Redact(w.Key), secret.Redact(w.Token)
	return encode(w)
}

// checkToken catches a token that cannot be this device's (a key pasted in
// its place, another device's token) before it reaches the board. It checks
// the shape only: the signature and expiry are the platform's to judge, and
// tests flash bad ones on purpose. Errors never quote the token.
func checkToken(tok, pid, name string) error {
	if strings.ContainsAny(tok, " \t\r\n\"\\") {
		return errors.New("token: has spaces or quotes; paste the output of `hil token` as is")
	}
	q, err := url.ParseQuery(tok)
	if err != nil {
		return errors.New("token: not a url query (want version=...&res=...&et=...&method=...&sign=..., from `hil token`)")
	}
	for _, f := range []string{"version", "res", "et", "method", "sign"} {
		if len(q[f]) != 1 || q[f][0] == "" {
			return fmt.Errorf("token: want exactly one %s= (from `hil token`)", f)
		}
	}
	if _, err := strconv.ParseInt(q["et"][0], 10, 64); err != nil {
		return errors.New("token: et is not unix seconds")
	}
	if res := q["res"][0]; res != "products/"+pid && res != "products/"+pid+"/devices/"+name {
		return fmt.Errorf("token: res %q is not products/%s or products/%s/devices/%s", res, pid, pid, name)
	}
	return nil
}
