package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Studio API result codes. OneNET's documents do not list them; these are
// ours (README.md, "Studio mode"): 0 success, then HTTP-like numbers.
const (
	StudioOK          = 0
	StudioBadRequest  = 10400
	StudioAuthFailed  = 10403
	StudioNotFound    = 10404
	StudioTimeout     = 10408
	StudioNotOnline   = 10410
	StudioQueueFull   = 10429 // the device's queue is full (a command waiting for its CONNACK)
	StudioInternal    = 10500
	studioDefaultWait = 15 * time.Second
)

type studioEnvelope struct {
	Code      int    `json:"code"`
	Msg       string `json:"msg"`
	RequestID string `json:"request_id"`
	Data      any    `json:"data,omitempty"`
}

func writeStudio(w http.ResponseWriter, code int, msg string, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(studioEnvelope{Code: code, Msg: msg, RequestID: uuid.NewString(), Data: data})
}

// postSyncCmd is OneNET Studio's synchronous command API:
// POST /datapoint/synccmds?product_id=P&device_name=D&timeout=S, header
// authorization = a token for products/P (access key) or
// products/P/devices/D (device key); body = the command. It answers when
// the device replies on cmd/response/{uuid}, or with a timeout.
func (b *Broker) postSyncCmd(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pid, name := q.Get("product_id"), q.Get("device_name")
	if pid == "" || name == "" {
		writeStudio(w, StudioBadRequest, "product_id and device_name required", nil)
		return
	}
	// Every failure before the caller is authenticated is the same answer:
	// no missing token, unknown product, unknown device, wrong signature or
	// expired token can be told apart (nor the tenants behind them).
	if err := b.reg.verifyAPIToken(r.Header.Get("authorization"), pid, name, time.Now()); err != nil {
		writeStudio(w, StudioAuthFailed, "auth failed", nil)
		return
	}
	_, devPID, ok := b.reg.Device(name)
	if !ok || devPID != pid {
		writeStudio(w, StudioNotFound, "device not found: "+name, nil)
		return
	}
	wait := studioDefaultWait
	if s := q.Get("timeout"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 30 {
			writeStudio(w, StudioBadRequest, "timeout must be 1..30 seconds", nil)
			return
		}
		wait = time.Duration(n) * time.Second
	}
	body, err := readBody(r)
	if err != nil || len(body) == 0 {
		writeStudio(w, StudioBadRequest, "command body required, under 64 KB", nil)
		return
	}
	mark := b.feed.Mark()
	id, err := b.SendCommand(name, body, CommandOptions{})
	switch {
	case errors.Is(err, ErrOffline):
		writeStudio(w, StudioNotOnline, "device not online: "+name, nil)
		return
	case errors.Is(err, ErrQueueFull):
		writeStudio(w, StudioQueueFull, err.Error(), nil)
		return
	case errors.Is(err, ErrStore):
		writeStudio(w, StudioInternal, "internal error", nil)
		return
	}
	if err != nil {
		writeStudio(w, StudioBadRequest, err.Error(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if !b.awaitReply(ctx, mark, id) {
		writeStudio(w, StudioTimeout, "command timeout", map[string]string{"cmd_uuid": id})
		return
	}
	info, _ := b.Command(id)
	writeStudio(w, StudioOK, "succ", map[string]string{"cmd_uuid": id, "cmd_resp": base64.StdEncoding.EncodeToString(info.Response)})
}
