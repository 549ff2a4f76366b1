package rig

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/scenario"
)

// Device is one device's secrets on both platforms: the legacy service
// takes its auth_info as the MQTT password, OneNET Studio a token signed
// with its key.
type Device struct {
	ID       string
	AuthInfo string // legacy: 鉴权信息, the MQTT password
	Key      string // studio: the device key (base64, as OneNET issues it)
	Token    string // studio: the login token signed with Key
}

// Password is what the device logs in with on platform p.
func (d Device) Password(p scenario.Platform) string {
	if p == scenario.Studio {
		return d.Token
	}
	return d.AuthInfo
}

// Credentials are every secret of a run, as one value: the product's keys
// and three devices — the board, the board with keys the broker does not
// know (wrong credentials), and a controller that publishes on the custom
// topic as a phone app would.
type Credentials struct {
	ProductID string
	MasterKey string // legacy: the product's APIKey (HTTP api-key)
	AccessKey string // studio: the product's access key
	// ProductToken is studio's product-level token for the HTTP API.
	ProductToken string

	Board, Wrong, Controller Device
}

// newCredentials makes a run's credentials: authInfo and apiKey when
// given (a real board's lab keys), random ones otherwise; studio tokens
// expire at et.
func newCredentials(authInfo, apiKey string, et time.Time) (Credentials, error) {
	c := Credentials{ProductID: ProductID, MasterKey: orRandom(apiKey, "key-"), AccessKey: randomKey(),
		Board:      Device{ID: DeviceID, AuthInfo: orRandom(authInfo, "auth-"), Key: randomKey()},
		Wrong:      Device{ID: DeviceID, AuthInfo: randomSecret("wrong-"), Key: randomKey()},
		Controller: Device{ID: ControllerID, AuthInfo: randomSecret("ctrl-"), Key: randomKey()},
	}
	var err error
	for _, d := range []*Device{&c.Board, &c.Wrong, &c.Controller} {
		if d.Token, err = broker.MakeToken("products/"+c.ProductID+"/devices/"+d.ID, d.Key, "sha256", et); err != nil {
			return c, fmt.Errorf("studio token: %w", err)
		}
	}
	if c.ProductToken, err = broker.MakeToken("products/"+c.ProductID, c.AccessKey, "sha256", et); err != nil {
		return c, fmt.Errorf("studio token: %w", err)
	}
	return c, nil
}

// Secrets lists every secret, for the masker.
func (c Credentials) Secrets() []string {
	s := []string{c.MasterKey, c.AccessKey, c.ProductToken}
	for _, d := range []Device{c.Board, c.Wrong, c.Controller} {
		s = append(s, d.AuthInfo, d.Key, d.Token)
	}
	return s
}

// register adds the product, the board and the controller to reg (the
// wrong device's keys stay unknown).
func (c Credentials) register(reg *broker.Registry) error {
	// The demo's thing model (led, a read-write bool): the property channel.
	if err := reg.AddProduct(broker.Product{ID: c.ProductID, Name: Topic, MasterKey: c.MasterKey, AccessKey: c.AccessKey,
		ThingModel: broker.DemoThingModel()}); err != nil {
		return err
	}
	for _, d := range []struct {
		Device
		title string
	}{{c.Board, "led-board"}, {c.Controller, "controller"}} {
		if err := reg.AddDevice(c.ProductID, broker.Device{ID: d.ID, Title: d.title, AuthInfo: d.AuthInfo, Key: d.Key}); err != nil {
			return err
		}
	}
	return nil
}

// login writes into cfg what the board logs in with on platform p: the
// legacy key or the studio token, of the board or (wrong) of the device
// with unknown keys.
func (c Credentials) login(cfg *firmware.Config, p scenario.Platform, wrong bool) {
	d := c.Board
	if wrong {
		d = c.Wrong
	}
	cfg.DeviceID, cfg.ProductID = d.ID, c.ProductID
	if p == scenario.Studio {
		cfg.Platform, cfg.Key, cfg.Token = firmware.Studio, "", d.Token
		return
	}
	cfg.Key = d.AuthInfo
}

// orRandom is s, or a fresh random secret when s is empty.
func orRandom(s, prefix string) string {
	if s != "" {
		return s
	}
	return randomSecret(prefix)
}

// randomSecret returns a fresh random credential.
func randomSecret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// randomKey returns a fresh random studio key (base64, as OneNET issues them).
func randomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
