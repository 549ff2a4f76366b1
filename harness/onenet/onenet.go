// Package onenet is a small client of OneNET's HTTP APIs, the real ones and
// the stand-in broker's: the legacy API (header api-key, answers
// {"errno":..,"error":..,"data":..}) and OneNET Studio's synchronous
// command API (header authorization = a token, answers
// {"code":..,"msg":..,"data":..}).
//
// OneNET answers HTTP 200 and puts the outcome in errno or code: a refusal
// is an *APIError, an answer that is not OneNET's JSON an *AnswerError
// (with the HTTP status), anything else the transport's error. Every call
// is bounded by its context (and by the http.Client's Timeout, if it has
// one); answers are read up to MaxAnswer bytes.
//
// Secrets: the client never puts its API key or token in an error, and
// replaces them with **** in any text it quotes from the server. Other
// secrets a server may echo (a device's auth_info, say) are the caller's
// to mask.
package onenet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/onenet-hil/hil/internal/secret"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxAnswer bounds the answer body the client reads.
const MaxAnswer = 1 << 20

// quoteMax bounds how much of a body that is not OneNET's an AnswerError
// quotes.
const quoteMax = 512

// Client calls one OneNET API endpoint. The zero value of HTTP means
// http.DefaultClient.
type Client struct {
	// BaseURL is the API's root, e.g. "http://127.0.0.1:8080" (a trailing
	// slash is ignored).
	BaseURL string
	// APIKey is the legacy API's api-key header: a product's master key.
	APIKey string
	// Token is Studio's authorization header: a token for the product
	// (access key) or the device (device key).
	Token string
	// HTTP does the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is a refusal in OneNET's own terms: the legacy API's errno and
// error, or Studio's code and msg.
type APIError struct {
	Op         string // what was asked, e.g. "POST /cmds"
	Studio     bool   // Code is Studio's code, not a legacy errno
	Code       int    // the errno (legacy) or code (Studio); never 0
	Msg        string // the error (legacy) or msg (Studio), credentials masked
	HTTPStatus int    // OneNET answers 200 even for a refusal
}

func (e *APIError) Error() string {
	word := "errno"
	if e.Studio {
		word = "code"
	}
	return fmt.Sprintf("%s: %s %d: %s", e.Op, word, e.Code, e.Msg)
}

// AnswerError is an answer that is not OneNET's JSON, or lacks what the
// call needs.
type AnswerError struct {
	Op         string
	HTTPStatus int
	Why        string // e.g. "not JSON", "no errno", "no data.cmd_uuid"
	Body       string // the start of the body, credentials masked
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("%s: HTTP %d, not a OneNET answer (%s): %q", e.Op, e.HTTPStatus, e.Why, e.Body)
}

// KeepTimeout is the longest timeout POST /cmds takes (31 days, in
// seconds): what SendCommand sends with qos 1.
const KeepTimeout = 2678400

// SendCommand is the legacy API's POST /cmds?device_id=ID[&qos=1&timeout=S]:
// the broker sends payload to the device as $creq/{uuid}. It returns the
// command's uuid. qos 1 is sent with OneNET's longest timeout (KeepTimeout),
// which keeps the command for an offline device and sends it again at each
// login until it is answered; qos 0 (no parameters) to an offline device is
// errno 10. OneNET keeps only a command with a timeout.
func (c *Client) SendCommand(ctx context.Context, deviceID string, payload []byte, qos int) (string, error) {
	q := url.Values{"device_id": {deviceID}}
	if qos != 0 {
		q.Set("qos", strconv.Itoa(qos))
		q.Set("timeout", strconv.Itoa(KeepTimeout))
	}
	var data struct {
		UUID string `json:"cmd_uuid"`
	}
	const op = "POST /cmds"
	ans, err := c.legacy(ctx, op, http.MethodPost, "/cmds", q, payload, &data)
	if err != nil {
		return "", err
	}
	if data.UUID == "" {
		return "", c.answerError(op, ans, "no data.cmd_uuid")
	}
	return data.UUID, nil
}

// DeviceOnline is the legacy API's GET /devices/{id}: whether the device
// has an MQTT session now.
func (c *Client) DeviceOnline(ctx context.Context, deviceID string) (bool, error) {
	var data struct {
		Online *bool `json:"online"`
	}
	const op = "GET /devices/{id}"
	ans, err := c.legacy(ctx, op, http.MethodGet, "/devices/"+url.PathEscape(deviceID), nil, nil, &data)
	if err != nil {
		return false, err
	}
	if data.Online == nil {
		return false, c.answerError(op, ans, "no data.online")
	}
	return *data.Online, nil
}

// SyncReply is what Studio's synchronous command API says about a
// command.
type SyncReply struct {
	CmdUUID  string // the command's uuid, when the answer has one
	Response []byte // the device's reply (data.cmd_resp, base64-decoded)
}

// SyncCommand is Studio's POST /datapoint/synccmds?product_id=P&
// device_name=D&timeout=S with the client's Token: the broker sends
// payload to the device and answers when it replies, or after timeout
// (rounded up to whole seconds; 0 leaves the server's default).
//
// A refusal is an *APIError with Studio set. On a timeout (the device got
// the command and did not answer in time) the reply still carries the
// command's uuid beside the error, so the caller can ask whether the
// command was delivered.
func (c *Client) SyncCommand(ctx context.Context, productID, deviceName string, payload []byte, timeout time.Duration) (SyncReply, error) {
	q := url.Values{"product_id": {productID}, "device_name": {deviceName}}
	if timeout > 0 {
		q.Set("timeout", strconv.Itoa(int(math.Ceil(timeout.Seconds()))))
	}
	const op = "POST /datapoint/synccmds"
	ans, err := c.do(ctx, op, http.MethodPost, "/datapoint/synccmds", q, payload, "authorization", c.Token)
	if err != nil {
		return SyncReply{}, err
	}
	var env struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			UUID string `json:"cmd_uuid"`
			Resp string `json:"cmd_resp"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ans.body, &env); err != nil {
		return SyncReply{}, c.answerError(op, ans, "not JSON")
	}
	if env.Code == nil {
		return SyncReply{}, c.answerError(op, ans, "no code")
	}
	rep := SyncReply{CmdUUID: env.Data.UUID}
	if *env.Code != 0 {
		return rep, &APIError{Op: op, Studio: true, Code: *env.Code, Msg: c.scrub(env.Msg), HTTPStatus: ans.status}
	}
	if !ans.ok() {
		return rep, c.answerError(op, ans, "code 0 with an HTTP error status")
	}
	if rep.Response, err = base64.StdEncoding.DecodeString(env.Data.Resp); err != nil {
		return rep, c.answerError(op, ans, "data.cmd_resp is not base64")
	}
	return rep, nil
}

// answer is an HTTP answer, read whole.
type answer struct {
	status int
	body   []byte
}

func (a answer) ok() bool { return a.status >= 200 && a.status < 300 }

// legacy calls the legacy API and decodes its envelope's data into data.
func (c *Client) legacy(ctx context.Context, op, method, path string, q url.Values, body []byte, data any) (answer, error) {
	ans, err := c.do(ctx, op, method, path, q, body, "api-key", c.APIKey)
	if err != nil {
		return ans, err
	}
	var env struct {
		Errno *int            `json:"errno"`
		Error string          `json:"error"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ans.body, &env); err != nil {
		return ans, c.answerError(op, ans, "not JSON")
	}
	switch {
	case env.Errno == nil:
		return ans, c.answerError(op, ans, "no errno")
	case *env.Errno != 0:
		return ans, &APIError{Op: op, Code: *env.Errno, Msg: c.scrub(env.Error), HTTPStatus: ans.status}
	case !ans.ok():
		return ans, c.answerError(op, ans, "errno 0 with an HTTP error status")
	}
	if len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, data); err != nil {
			return ans, c.answerError(op, ans, "unexpected data")
		}
	}
	return ans, nil
}

// do sends one request with the credential header (when cred is set) and
// reads the answer up to MaxAnswer bytes.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body []byte, header, cred string) (answer, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", op, err)
	}
	if cred != "" {
		req.Header.Set(header, cred)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	ans := answer{status: resp.StatusCode, body: raw}
	if err != nil {
		return ans, fmt.Errorf("%s: HTTP %d, reading the answer: %w", op, resp.StatusCode, err)
	}
	if len(raw) > MaxAnswer {
		return ans, c.answerError(op, ans, fmt.Sprintf("larger than %d bytes", MaxAnswer))
	}
	return ans, nil
}

func (c *Client) answerError(op string, ans answer, why string) error {
	b := ans.body
	if len(b) > quoteMax {
		b = b[:quoteMax]
	}
	return &AnswerError{Op: op, HTTPStatus: ans.status, Why: why, Body: c.scrub(string(b))}
}

// scrub masks the client's own credentials in text it got from the
// server, also in their escaped forms (a JSON answer writes a token's &
// as \u0026).
func (c *Client) scrub(s string) string {
	return secret.NewMasker(c.APIKey, c.Token).Mask(s)
}

// IsAPIError reports whether err is an *APIError with this errno or code.
func IsAPIError(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}
