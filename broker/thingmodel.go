package broker

// A product's OneJSON thing model (物模型): its properties, events and
// services with their data types, ranges and access modes, as OneNET's
// console exports it (README.md, "Thing model"). The broker checks every
// property post, event post, property set and service call against it.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// ThingModel is a product's thing model. In the registry YAML it is given
// inline (the OneJSON keys as YAML) or as the path of a OneJSON file,
// relative to the registry file.
type ThingModel struct {
	Properties []ThingProperty `yaml:"properties" json:"properties"`
	Events     []ThingEvent    `yaml:"events" json:"events"`
	Services   []ThingService  `yaml:"services" json:"services"`

	path string // set when given as a file path, until resolve loads it
	line int    // of the thing_model key, for errors
}

// ThingProperty is one property: AccessMode "r" (the device reports it) or
// "rw" (an application may also set it).
type ThingProperty struct {
	Identifier string        `yaml:"identifier" json:"identifier"`
	Name       string        `yaml:"name" json:"name"`
	AccessMode string        `yaml:"accessMode" json:"accessMode"`
	DataType   ThingDataType `yaml:"dataType" json:"dataType"`
}

// ThingEvent is one event the device may post, with its output fields.
type ThingEvent struct {
	Identifier string       `yaml:"identifier" json:"identifier"`
	Name       string       `yaml:"name" json:"name"`
	OutputData []ThingField `yaml:"outputData" json:"outputData"`
}

// ThingService is one service an application may call on the device.
type ThingService struct {
	Identifier string       `yaml:"identifier" json:"identifier"`
	Name       string       `yaml:"name" json:"name"`
	InputData  []ThingField `yaml:"inputData" json:"inputData"`
	OutputData []ThingField `yaml:"outputData" json:"outputData"`
}

// ThingField is a named value inside an event, a service or a struct.
type ThingField struct {
	Identifier string        `yaml:"identifier" json:"identifier"`
	Name       string        `yaml:"name" json:"name"`
	DataType   ThingDataType `yaml:"dataType" json:"dataType"`
}

// ThingDataType is OneJSON's dataType: type int32, int64, float, double
// (specs min, max: numbers as strings), bool, enum (specs value -> name),
// string (specs length), bitMap (specs length: bits), struct (specs: the
// fields), array (specs length, type and the element's specs).
type ThingDataType struct {
	Type  string    `yaml:"type" json:"type"`
	Specs yaml.Node `yaml:"specs" json:"-"`

	min, max *float64
	length   int
	enum     map[string]bool
	fields   []ThingField
	elem     *ThingDataType
}

// UnmarshalYAML takes the model inline or as a file path.
func (m *ThingModel) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		*m = ThingModel{path: n.Value, line: n.Line}
		return nil
	}
	type plain ThingModel
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*m = ThingModel(p)
	m.line = n.Line
	return m.compile()
}

// resolve loads a model given as a path (relative to dir); nil-safe, so
// the registry calls it for every product.
func (m *ThingModel) resolve(dir string) error {
	if m == nil || m.path == "" {
		return nil
	}
	p := m.path
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("thing_model: %w", err)
	}
	tm, err := ParseThingModel(data)
	if err != nil {
		return fmt.Errorf("thing_model %s: %w", m.path, err)
	}
	*m = *tm
	return nil
}

// ParseThingModel reads a OneJSON thing model (JSON, or the same as YAML).
func ParseThingModel(data []byte) (*ThingModel, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = *n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: a thing model is an object with properties, events, services", n.Line)
	}
	var m ThingModel
	if err := m.UnmarshalYAML(&n); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *ThingModel) compile() error {
	seen := map[string]bool{}
	check := func(kind, id string) error {
		if id == "" {
			return fmt.Errorf("line %d: thing_model: a %s without identifier", m.line, kind)
		}
		if seen[kind+"/"+id] {
			return fmt.Errorf("line %d: thing_model: %s %q defined twice", m.line, kind, id)
		}
		seen[kind+"/"+id] = true
		return nil
	}
	for i := range m.Properties {
		p := &m.Properties[i]
		if err := check("property", p.Identifier); err != nil {
			return err
		}
		if p.AccessMode == "" {
			p.AccessMode = "rw"
		}
		if p.AccessMode != "r" && p.AccessMode != "rw" {
			return fmt.Errorf("line %d: thing_model: property %s: accessMode %q, want r or rw", m.line, p.Identifier, p.AccessMode)
		}
		if err := p.DataType.compile(); err != nil {
			return fmt.Errorf("line %d: thing_model: property %s: %v", m.line, p.Identifier, err)
		}
	}
	for i := range m.Events {
		e := &m.Events[i]
		if err := check("event", e.Identifier); err != nil {
			return err
		}
		if err := compileFields(e.OutputData); err != nil {
			return fmt.Errorf("line %d: thing_model: event %s: %v", m.line, e.Identifier, err)
		}
	}
	for i := range m.Services {
		s := &m.Services[i]
		if err := check("service", s.Identifier); err != nil {
			return err
		}
		if err := compileFields(s.InputData); err != nil {
			return fmt.Errorf("line %d: thing_model: service %s: %v", m.line, s.Identifier, err)
		}
		if err := compileFields(s.OutputData); err != nil {
			return fmt.Errorf("line %d: thing_model: service %s: %v", m.line, s.Identifier, err)
		}
	}
	return nil
}

func compileFields(fs []ThingField) error {
	for i := range fs {
		if fs[i].Identifier == "" {
			return fmt.Errorf("a field without identifier")
		}
		if err := fs[i].DataType.compile(); err != nil {
			return fmt.Errorf("%s: %v", fs[i].Identifier, err)
		}
	}
	return nil
}

func (t *ThingDataType) compile() error {
	s := &t.Specs
	switch t.Type {
	case "int32", "int64", "float", "double":
		var sp struct{ Min, Max string }
		if s.Kind != 0 {
			if err := s.Decode(&sp); err != nil {
				return fmt.Errorf("%s specs: %v", t.Type, err)
			}
		}
		for _, f := range []struct {
			s string
			p **float64
		}{{sp.Min, &t.min}, {sp.Max, &t.max}} {
			if f.s == "" {
				continue
			}
			v, err := strconv.ParseFloat(f.s, 64)
			if err != nil {
				return fmt.Errorf("%s specs: %q is not a number", t.Type, f.s)
			}
			*f.p = &v
		}
	case "bool", "enum":
		var sp map[string]string
		if s.Kind != 0 {
			if err := s.Decode(&sp); err != nil {
				return fmt.Errorf("%s specs: %v", t.Type, err)
			}
		}
		if t.Type == "enum" {
			t.enum = map[string]bool{}
			for k := range sp {
				t.enum[k] = true
			}
		}
	case "string", "bitMap":
		var sp struct{ Length string }
		if s.Kind != 0 {
			if err := s.Decode(&sp); err != nil {
				return fmt.Errorf("%s specs: %v", t.Type, err)
			}
		}
		if sp.Length != "" {
			n, err := strconv.Atoi(sp.Length)
			if err != nil || n < 0 {
				return fmt.Errorf("%s specs: length %q", t.Type, sp.Length)
			}
			t.length = n
		}
	case "struct":
		if err := s.Decode(&t.fields); err != nil {
			return fmt.Errorf("struct specs: %v", err)
		}
		return compileFields(t.fields)
	case "array":
		var sp struct {
			Length string
			Type   string
			Specs  yaml.Node
		}
		if err := s.Decode(&sp); err != nil {
			return fmt.Errorf("array specs: %v", err)
		}
		if sp.Length != "" {
			n, err := strconv.Atoi(sp.Length)
			if err != nil || n < 0 {
				return fmt.Errorf("array specs: length %q", sp.Length)
			}
			t.length = n
		}
		t.elem = &ThingDataType{Type: sp.Type, Specs: sp.Specs}
		return t.elem.compile()
	default:
		return fmt.Errorf("data type %q: want int32, int64, float, double, bool, enum, string, bitMap, struct or array", t.Type)
	}
	return nil
}

// check says why v (decoded with UseNumber) is not a value of the type.
func (t *ThingDataType) check(v any) error {
	switch t.Type {
	case "int32", "int64", "float", "double":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("want a number (%s), got %s", t.Type, jsonKind(v))
		}
		f, err := n.Float64()
		if err != nil {
			return fmt.Errorf("%s is not a number", n)
		}
		if t.Type == "int32" || t.Type == "int64" {
			i, err := n.Int64()
			if err != nil {
				return fmt.Errorf("want an integer (%s), got %s", t.Type, n)
			}
			if t.Type == "int32" && (i < math.MinInt32 || i > math.MaxInt32) {
				return fmt.Errorf("%d is outside int32", i)
			}
		}
		if t.min != nil && f < *t.min || t.max != nil && f > *t.max {
			return fmt.Errorf("%s is outside %s..%s", n, fmtBound(t.min), fmtBound(t.max))
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want a bool, got %s", jsonKind(v))
		}
	case "enum":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("want an enum value (a number), got %s", jsonKind(v))
		}
		if len(t.enum) > 0 && !t.enum[n.String()] {
			return fmt.Errorf("%s is not one of the enum's values", n)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %s", jsonKind(v))
		}
		if t.length > 0 && utf8.RuneCountInString(s) > t.length {
			return fmt.Errorf("string of %d characters, longer than %d", utf8.RuneCountInString(s), t.length)
		}
	case "bitMap":
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			return fmt.Errorf("want a bitMap (a non-negative integer), got %v", v)
		}
		if t.length > 0 && t.length < 63 && i >= 1<<t.length {
			return fmt.Errorf("bitMap %d has more than %d bits", i, t.length)
		}
	case "struct":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want a struct (an object), got %s", jsonKind(v))
		}
		return checkFields(t.fields, obj)
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("want an array, got %s", jsonKind(v))
		}
		if t.length > 0 && len(a) > t.length {
			return fmt.Errorf("array of %d elements, longer than %d", len(a), t.length)
		}
		for i, e := range a {
			if err := t.elem.check(e); err != nil {
				return fmt.Errorf("[%d]: %v", i, err)
			}
		}
	}
	return nil
}

// checkFields checks an object against its fields: every key must be a
// field (fields left out are allowed).
func checkFields(fs []ThingField, obj map[string]any) error {
	for k, v := range obj {
		f := findField(fs, k)
		if f == nil {
			return fmt.Errorf("%s: no such identifier", k)
		}
		if err := f.DataType.check(v); err != nil {
			return fmt.Errorf("%s: %v", k, err)
		}
	}
	return nil
}

func findField(fs []ThingField, id string) *ThingField {
	for i := range fs {
		if fs[i].Identifier == id {
			return &fs[i]
		}
	}
	return nil
}

func fmtBound(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Property returns the property with identifier id.
func (m *ThingModel) Property(id string) (*ThingProperty, bool) {
	if m == nil {
		return nil, false
	}
	for i := range m.Properties {
		if m.Properties[i].Identifier == id {
			return &m.Properties[i], true
		}
	}
	return nil, false
}

func (m *ThingModel) event(id string) *ThingEvent {
	if m == nil {
		return nil
	}
	for i := range m.Events {
		if m.Events[i].Identifier == id {
			return &m.Events[i]
		}
	}
	return nil
}

func (m *ThingModel) service(id string) *ThingService {
	if m == nil {
		return nil
	}
	for i := range m.Services {
		if m.Services[i].Identifier == id {
			return &m.Services[i]
		}
	}
	return nil
}

// modelError is a message that violates the thing model; Code is the
// OneJSON reply code it gets (studio_thing.go).
type modelError struct {
	Code int
	Msg  string
}

func (e *modelError) Error() string { return e.Msg }

func badModel(code int, format string, a ...any) error {
	return &modelError{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// Reply codes of the OneJSON thing-model topics (decisions: README.md,
// "Thing model"): 200 success, then HTTP-like numbers.
const (
	ThingOK         = 200
	ThingBadRequest = 400 // not OneJSON, a type or range violated
	ThingForbidden  = 403 // the access mode does not allow it
	ThingNotFound   = 404 // the identifier is not in the model
)

// checkSet checks application-set values {"id": value}.
func (m *ThingModel) checkSet(params map[string]any) error {
	if len(params) == 0 {
		return badModel(ThingBadRequest, "params: no property to set")
	}
	for id, v := range params {
		p, ok := m.Property(id)
		if !ok {
			return badModel(ThingNotFound, "property %s is not in the thing model", id)
		}
		if !strings.Contains(p.AccessMode, "w") {
			return badModel(ThingForbidden, "property %s is read-only (accessMode %s)", id, p.AccessMode)
		}
		if err := p.DataType.check(v); err != nil {
			return badModel(ThingBadRequest, "property %s: %v", id, err)
		}
	}
	return nil
}

// checkPost checks device-posted properties {"id": {"value": v, "time": ms}}.
func (m *ThingModel) checkPost(params map[string]any) error {
	if len(params) == 0 {
		return badModel(ThingBadRequest, "params: no property")
	}
	for id, raw := range params {
		p, ok := m.Property(id)
		if !ok {
			return badModel(ThingNotFound, "property %s is not in the thing model", id)
		}
		v, err := valueOf(raw)
		if err != nil {
			return badModel(ThingBadRequest, "property %s: %v", id, err)
		}
		if err := p.DataType.check(v); err != nil {
			return badModel(ThingBadRequest, "property %s: %v", id, err)
		}
	}
	return nil
}

// checkEvent checks device-posted events {"id": {"value": {...}, "time": ms}}.
func (m *ThingModel) checkEvent(params map[string]any) error {
	if len(params) == 0 {
		return badModel(ThingBadRequest, "params: no event")
	}
	for id, raw := range params {
		e := m.event(id)
		if e == nil {
			return badModel(ThingNotFound, "event %s is not in the thing model", id)
		}
		v, err := valueOf(raw)
		if err != nil {
			return badModel(ThingBadRequest, "event %s: %v", id, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return badModel(ThingBadRequest, "event %s: value must be an object of its output fields", id)
		}
		if err := checkFields(e.OutputData, obj); err != nil {
			return badModel(ThingBadRequest, "event %s: %v", id, err)
		}
	}
	return nil
}

// checkCall checks a service call's input.
func (m *ThingModel) checkCall(id string, params map[string]any) error {
	s := m.service(id)
	if s == nil {
		return badModel(ThingNotFound, "service %s is not in the thing model", id)
	}
	if err := checkFields(s.InputData, params); err != nil {
		return badModel(ThingBadRequest, "service %s: %v", id, err)
	}
	return nil
}

// checkGet checks the identifiers of a property get.
func (m *ThingModel) checkGet(ids []string) error {
	if len(ids) == 0 {
		return badModel(ThingBadRequest, "params: no identifier")
	}
	for _, id := range ids {
		if _, ok := m.Property(id); !ok {
			return badModel(ThingNotFound, "property %s is not in the thing model", id)
		}
	}
	return nil
}

// valueOf takes {"value": v, "time": ms} apart (time optional, integer).
func valueOf(raw any) (any, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`want {"value":...,"time":...}, got %s`, jsonKind(raw))
	}
	v, ok := obj["value"]
	if !ok {
		return nil, fmt.Errorf("no value")
	}
	if t, ok := obj["time"]; ok {
		n, isNum := t.(json.Number)
		if _, err := n.Int64(); !isNum || err != nil {
			return nil, fmt.Errorf("time must be unix milliseconds")
		}
	}
	return v, nil
}

// DemoThingModel is the demo product's model: the LED, a read-write bool.
func DemoThingModel() *ThingModel {
	m, err := ParseThingModel([]byte(`{"properties":[{"identifier":"led","name":"LED","accessMode":"rw","dataType":{"type":"bool","specs":{"0":"off","1":"on"}}}]}`))
	must(err)
	return m
}

// The demo product's owner account, for res=userid/{id} API tokens.
const (
	DemoUserID  = "386427001"
	DemoUserKey = "ZGVtby11c2VyLWtleS0zODY0MjcwMDE=" // "demo-user-key-386427001"
)
