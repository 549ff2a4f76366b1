package broker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Whole-file registry errors carry no line: there is no line to point at.
var (
	regErrWithLine = regexp.MustCompile(`^reg\.yaml:[1-9][0-9]*: \S`)
	regErrWhole    = regexp.MustCompile(`^reg\.yaml: (empty registry|no products)`)
)

// FuzzParseRegistry: no input panics; every error names the file and a
// line (or is a whole-file error); a registry that loads survives a
// marshal/parse round trip unchanged. Seeds: testdata/fuzz/FuzzParseRegistry.
func FuzzParseRegistry(f *testing.F) {
	for _, s := range []string{
		"products:\n  - id: \"1\"\n    name: a\n    master_key: k\n    devices:\n      - id: \"2\"\n        title: t\n        auth_info: x\n        key: a2V5\n        disabled: true\n",
		"products:\n  - id: \"1\"\n    master_kee: x\n",
		"products:\n  - id: \"1\"\n  - id: \"1\"\n",
		"products: [\n",
		"products:\n  - &p {id: \"1\"}\n  - *p\n",
		"products:\n  - id: \"1\"\n    devices: [{id: \"2\"}, {id: \"2\"}]\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRegistry("reg.yaml", data)
		if err != nil {
			if r != nil {
				t.Fatalf("registry and error: %v", err)
			}
			msg := err.Error()
			if !regErrWithLine.MatchString(msg) && !regErrWhole.MatchString(msg) {
				t.Fatalf("error does not name file and line: %q", msg)
			}
			return
		}
		ps := r.Products()
		if len(ps) == 0 {
			t.Fatal("loaded with no products")
		}
		out, err := yaml.Marshal(registryFile{Products: ps})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		r2, err := ParseRegistry("reg.yaml", out)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		a, b := stripTimes(ps), stripTimes(r2.Products())
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("round trip changed the registry:\n%s\n%s", ja, jb)
		}
	})
}

func stripTimes(ps []Product) []Product {
	for i := range ps {
		for j := range ps[i].Devices {
			ps[i].Devices[j].CreateTime = time.Time{} // not in the file
		}
	}
	return ps
}

// Known errnos of the legacy API and codes of the studio sync API.
var (
	knownErrno = map[int]bool{ErrnoOK: true, ErrnoInternal: true, ErrnoNoAPIKey: true, ErrnoAuthFailed: true, ErrnoInvalid: true,
		ErrnoRequired: true, ErrnoNotFound: true, ErrnoNotOnline: true, ErrnoQueueFull: true,
		ErrnoBadJSON: true, ErrnoTooLarge: true, ErrnoNoBody: true, SyncErrnoNotFound: true, SyncErrnoTimeout: true}
	knownStudioCode = map[int]bool{StudioOK: true, StudioBadRequest: true, StudioAuthFailed: true, StudioNotFound: true,
		StudioTimeout: true, StudioNotOnline: true, StudioQueueFull: true, StudioInternal: true, StudioDeviceError: true}
)

// FuzzHTTPAPI sends fuzzed methods, paths, queries, keys, headers and
// bodies through the API's handler: the answer is always HTTP 200 with a
// OneNET envelope and a known errno, and never shows a master key or
// another product's device secret. Seeds: testdata/fuzz/FuzzHTTPAPI.
func FuzzHTTPAPI(f *testing.F) {
	b := startBroker(f, nil)
	h := b.httpHandler()
	f.Add(uint8(1), "/cmds", "device_id="+DemoDeviceID+"&qos=1&timeout=5", uint8(1), "", "", []byte("on"))
	f.Add(uint8(1), "/cmds", "device_id="+otherDeviceID, uint8(1), "", "", []byte("on"))
	f.Add(uint8(0), "/cmds/x", "", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/cmds/x/resp", "", uint8(2), "", "", []byte{})
	f.Add(uint8(0), "/devices/status", "devIds="+DemoDeviceID+","+otherDeviceID, uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/devices/"+DemoDeviceID, "", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/devices/"+otherDeviceID, "", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/devices/"+DemoDeviceID+"/datapoints", "start=2026-01-01T00:00:00&end=2026-01-02T00:00:00&limit=5&datastream_id=a,b", uint8(1), "", "", []byte{})
	f.Add(uint8(1), "/mqtt", "topic=led/cmd", uint8(1), "", "", []byte("toggle"))
	f.Add(uint8(0), "/devices", "page=2&per_page=1&key_words=5", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/devices/"+DemoDeviceID+"/datastreams", "datastream_ids=a,b", uint8(1), "", "", []byte{})
	f.Add(uint8(1), "/devices/"+DemoDeviceID+"/datapoints", "", uint8(1), "", "", []byte(`{"datastreams":[{"id":"a","datapoints":[{"value":1}]}]}`))
	f.Add(uint8(0), "/devices/"+DemoDeviceID+"/datapoints", "duration=60&sort=DESC&limit=2&cursor=2_"+DemoDeviceID, uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/bindata/"+DemoDeviceID+"_1_a", "", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/cmds/history/"+DemoDeviceID, "start=2026-01-01T00:00:00", uint8(1), "", "", []byte{})
	f.Add(uint8(1), "/mqtt/topic", "", uint8(1), "", "", []byte(`{"name":"a_b"}`))
	f.Add(uint8(0), "/mqtt/topic_device", "topic=a_b&page=1&per_page=10", uint8(1), "", "", []byte{})
	f.Add(uint8(0), "/mqtt/device_topic/"+DemoDeviceID, "", uint8(2), "", "", []byte{})
	f.Add(uint8(1), "/datapoint/synccmds", "product_id="+DemoProductID+"&device_name="+DemoDeviceID+"&timeout=1", uint8(0), "authorization", "version=2018-10-31&res=products%2F386427&et=9999999999&method=md5&sign=x", []byte("on"))
	f.Add(uint8(1), "/v1/synccmds", "device_id="+DemoDeviceID+"&timeout=5", uint8(1), "", "", []byte("on"))
	f.Add(uint8(1), "/thingmodel/set-device-property", "", uint8(0), "authorization", "version=2022-05-01&res=userid%2F386427001&et=9999999999&method=md5&sign=x", []byte(`{"product_id":"386427","device_name":"503367129","params":{"led":true}}`))
	f.Add(uint8(0), "/thingmodel/query-device-property", "product_id=386427&device_name=503367129", uint8(0), "authorization", "", []byte{})
	f.Add(uint8(2), "//cmds/../devices/./status", "%zz", uint8(3), "api-key", "", []byte{0xff})
	f.Fuzz(func(t *testing.T, method uint8, path, query string, keySel uint8, hname, hval string, body []byte) {
		methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT"}
		keys := []string{"", DemoMasterKey, otherMasterKey, "wrong"}
		req := &http.Request{
			Method:     methods[int(method)%len(methods)],
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1,
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Host:       "127.0.0.1",
			RequestURI: (&url.URL{Path: path, RawQuery: query}).RequestURI(),
		}
		req.ContentLength = int64(len(body))
		if k := keys[int(keySel)%len(keys)]; k != "" {
			req.Header.Set("api-key", k)
		}
		if hname != "" && httpHeaderName(hname) {
			req.Header.Add(hname, hval)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		raw := w.Body.Bytes()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s %q ?%q: HTTP %d: %s", req.Method, path, query, res.StatusCode, raw)
		}
		if req.Method == "HEAD" {
			return
		}
		// Master keys never appear; device secrets only to their own product's key.
		secrets := []string{DemoMasterKey, otherMasterKey, DemoAccessKey, DemoDeviceKey}
		if req.Header.Get("api-key") != DemoMasterKey {
			secrets = append(secrets, DemoAuthInfo, siblingAuth)
		}
		if req.Header.Get("api-key") != otherMasterKey {
			secrets = append(secrets, otherAuthInfo)
		}
		for _, secret := range secrets {
			if strings.Contains(string(raw), secret) {
				t.Fatalf("answer shows a secret: %s", raw)
			}
		}
		if res.Header.Get("Content-Type") == "application/octet-stream" {
			return // a command's raw reply; no device replies here
		}
		var env struct {
			Errno *int    `json:"errno"`
			Error *string `json:"error"`
			Code  *int    `json:"code"`
			Msg   *string `json:"msg"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %q ?%q: not JSON: %q", req.Method, path, query, raw)
		}
		switch {
		case env.Errno != nil && env.Error != nil:
			if !knownErrno[*env.Errno] || *env.Error == "" {
				t.Fatalf("unknown errno or empty error: %s", raw)
			}
		case env.Code != nil && env.Msg != nil:
			if !knownStudioCode[*env.Code] || *env.Msg == "" {
				t.Fatalf("unknown studio code: %s", raw)
			}
		default:
			t.Fatalf("not an envelope: %s", raw)
		}
	})
}

// httpHeaderName: net/http would refuse to send an invalid header name,
// so the handler never sees one.
func httpHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
