package broker

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TokenVersion is the only token version OneNET accepts.
const TokenVersion = "2018-10-31"

// Token is a parsed OneNET (Studio) security token.
type Token struct {
	Version string
	Res     string // "products/{pid}" or "products/{pid}/devices/{name}"
	ET      int64  // expiry, unix seconds
	Method  string // md5, sha1 or sha256
	Sign    string // base64
}

func tokenHash(method string) (func() hash.Hash, error) {
	switch method {
	case "md5":
		return md5.New, nil
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	}
	return nil, fmt.Errorf("token method %q: want md5, sha1 or sha256", method)
}

// tokenSign computes base64(HMAC-method(base64decode(key), et\nmethod\nres\nversion)).
func tokenSign(key, method, res, version string, et int64) (string, error) {
	h, err := tokenHash(method)
	if err != nil {
		return "", err
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("key is not base64: %v", err)
	}
	m := hmac.New(h, k)
	fmt.Fprintf(m, "%d\n%s\n%s\n%s", et, method, res, version)
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// tokenEscape url-encodes a token value the way OneNET documents it.
var tokenEscape = strings.NewReplacer("%", "%25", "+", "%2B", " ", "%20", "/", "%2F", "?", "%3F", "#", "%23", "&", "%26", "=", "%3D")

// MakeToken builds a token for res ("products/{pid}" with the product's
// access key, or "products/{pid}/devices/{name}" with the device key),
// valid until expires.
func MakeToken(res, key, method string, expires time.Time) (string, error) {
	et := expires.Unix()
	sign, err := tokenSign(key, method, res, TokenVersion, et)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("version=%s&res=%s&et=%d&method=%s&sign=%s",
		tokenEscape.Replace(TokenVersion), tokenEscape.Replace(res), et, tokenEscape.Replace(method), tokenEscape.Replace(sign)), nil
}

// ParseToken splits a token string into its url-decoded fields.
func ParseToken(s string) (Token, error) {
	q, err := url.ParseQuery(s)
	if err != nil {
		return Token{}, fmt.Errorf("token is not a url query: %v", err)
	}
	var t Token
	for _, f := range []struct {
		name string
		v    *string
	}{{"version", &t.Version}, {"res", &t.Res}, {"method", &t.Method}, {"sign", &t.Sign}} {
		if len(q[f.name]) != 1 || q[f.name][0] == "" {
			return Token{}, fmt.Errorf("token: want exactly one %s", f.name)
		}
		*f.v = q[f.name][0]
	}
	if len(q["et"]) != 1 {
		return Token{}, fmt.Errorf("token: want exactly one et")
	}
	if t.ET, err = strconv.ParseInt(q["et"][0], 10, 64); err != nil {
		return Token{}, fmt.Errorf("token: et %q is not unix seconds", q["et"][0])
	}
	return t, nil
}

// verifyToken checks a token for product pid (and device name, "" for a
// product-level API call) against the registry's keys.
func (r *Registry) verifyToken(s, pid, name string, now time.Time) error {
	t, err := ParseToken(s)
	if err != nil {
		return err
	}
	if t.Version != TokenVersion {
		return fmt.Errorf("token version %q: want %s", t.Version, TokenVersion)
	}
	return r.verifyParsed(t, pid, name, now)
}

// verifyParsed checks a product- or device-level token's expiry and
// signature (over its own version).
func (r *Registry) verifyParsed(t Token, pid, name string, now time.Time) error {
	if t.ET <= now.Unix() {
		return fmt.Errorf("token expired at %s", time.Unix(t.ET, 0).UTC().Format(time.RFC3339))
	}
	prod, ok := r.Product(pid)
	if !ok {
		return fmt.Errorf("unknown product %s", pid)
	}
	var key string
	switch t.Res {
	case "products/" + pid:
		key = prod.AccessKey
	case "products/" + pid + "/devices/" + name:
		if name == "" {
			return fmt.Errorf("token res %q: not for this product", t.Res)
		}
		d, _, ok := r.Device(name)
		if !ok {
			return fmt.Errorf("unknown device %s", name)
		}
		key = d.Key
	default:
		return fmt.Errorf("token res %q: want products/%s or products/%s/devices/%s", t.Res, pid, pid, name)
	}
	if key == "" {
		return fmt.Errorf("token res %q: the registry has no key for it", t.Res)
	}
	want, err := tokenSign(key, t.Method, t.Res, t.Version, t.ET)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(t.Sign)) {
		return fmt.Errorf("token sign does not match (key, method or url-encoding wrong)")
	}
	return nil
}

// APITokenVersion is the version of OneNET's current application API
// tokens (res=userid/{id}, signed with the account's access key); the
// API also takes TokenVersion tokens of the product or the device.
const APITokenVersion = "2022-05-01"

// MakeUserToken builds an application API token for the account userID
// (res=userid/{id}, version 2022-05-01) with its base64 access key.
func MakeUserToken(userID, key, method string, expires time.Time) (string, error) {
	res := "userid/" + userID
	et := expires.Unix()
	sign, err := tokenSign(key, method, res, APITokenVersion, et)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("version=%s&res=%s&et=%d&method=%s&sign=%s",
		APITokenVersion, tokenEscape.Replace(res), et, tokenEscape.Replace(method), tokenEscape.Replace(sign)), nil
}

// verifyAPIToken checks an application API authorization for product pid
// (device name, "" when the call names none): a token of the product or of
// the device (version 2018-10-31 or 2022-05-01), or of the account owning
// the product (res=userid/{id}).
func (r *Registry) verifyAPIToken(s, pid, name string, now time.Time) error {
	t, err := ParseToken(s)
	if err != nil {
		return err
	}
	if t.Version != TokenVersion && t.Version != APITokenVersion {
		return fmt.Errorf("token version %q: want %s or %s", t.Version, APITokenVersion, TokenVersion)
	}
	uid, isUser := strings.CutPrefix(t.Res, "userid/")
	if !isUser {
		return r.verifyParsed(t, pid, name, now)
	}
	if t.ET <= now.Unix() {
		return fmt.Errorf("token expired at %s", time.Unix(t.ET, 0).UTC().Format(time.RFC3339))
	}
	prod, ok := r.Product(pid)
	if !ok {
		return fmt.Errorf("unknown product %s", pid)
	}
	if prod.UserID == "" || prod.UserKey == "" || uid != prod.UserID {
		return fmt.Errorf("token res %q: not the account of product %s", t.Res, pid)
	}
	want, err := tokenSign(prod.UserKey, t.Method, t.Res, t.Version, t.ET)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(t.Sign)) {
		return fmt.Errorf("token sign does not match (key, method or url-encoding wrong)")
	}
	return nil
}
