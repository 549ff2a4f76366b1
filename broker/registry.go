package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onenet-hil/hil/internal/secret"
	"go.yaml.in/yaml/v3"
)

// Product is a OneNET product (产品): its devices log in with user name = ID.
type Product struct {
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"`
	MasterKey string   `yaml:"master_key"` // the product's APIKey: MQTT password and HTTP api-key
	AccessKey string   `yaml:"access_key"` // studio: base64 product key for product-level tokens
	Devices   []Device `yaml:"devices"`
	// Studio application API: the OneNET account owning the product
	// (res=userid/{id} tokens, signed with its base64 access key) and the
	// product's OneJSON thing model (thingmodel.go).
	UserID     string      `yaml:"user_id"`
	UserKey    string      `yaml:"user_key"`
	ThingModel *ThingModel `yaml:"thing_model"`
}

// Device is a OneNET device (设备): its ID is the MQTT client id.
type Device struct {
	ID         string    `yaml:"id"`
	Title      string    `yaml:"title"`
	AuthInfo   string    `yaml:"auth_info"` // 鉴权信息, the device's own MQTT password
	Key        string    `yaml:"key"`       // studio: base64 device key for device-level tokens
	APIKey     string    `yaml:"api_key"`   // a device-level APIKey: HTTP api-key for this device only
	Disabled   bool      `yaml:"disabled"`
	CreateTime time.Time `yaml:"-"`
}

// Registry holds products and devices; it is safe for concurrent use and
// may grow while the broker runs.
type Registry struct {
	mu       sync.RWMutex
	products map[string]*Product // devices live in byDevice, not in Product.Devices
	order    []string
	devices  map[string]*deviceEntry
	ver      uint64                         // bumped by every change of a secret (masking rebuilds on it)
	topics   map[string]map[string]struct{} // product -> its custom topics (legacy_topics.go)
}

type deviceEntry struct {
	Device
	productID string
}

// Demo credentials: the tutorial's product and device ids.
const (
	DemoProductID = "386427"
	DemoMasterKey = "demo-master-key-386427"
	DemoDeviceID  = "503367129"
	DemoAuthInfo  = "tpy-001"
	// Studio keys are base64, as OneNET issues them.
	DemoAccessKey = "ZGVtby1hY2Nlc3Mta2V5LTM4NjQyNw=="     // "demo-access-key-386427"
	DemoDeviceKey = "ZGVtby1kZXZpY2Uta2V5LTUwMzM2NzEyOQ==" // "demo-device-key-503367129"
)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{products: map[string]*Product{}, devices: map[string]*deviceEntry{}}
}

// DemoRegistry is the registry used when none is given: the tutorial's
// product 386427 (TurnipRobot) with device 503367129 (led-board).
func DemoRegistry() *Registry {
	r := NewRegistry()
	must(r.AddProduct(Product{ID: DemoProductID, Name: "TurnipRobot", MasterKey: DemoMasterKey, AccessKey: DemoAccessKey,
		UserID: DemoUserID, UserKey: DemoUserKey, ThingModel: DemoThingModel()}))
	must(r.AddDevice(DemoProductID, Device{ID: DemoDeviceID, Title: "led-board", AuthInfo: DemoAuthInfo, Key: DemoDeviceKey}))
	return r
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// idPattern: OneNET ids are numeric, but test registries use names too; a
// '$' or '@' would collide with the broker's internal topic and client names.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// AddProduct adds a product and the devices listed in it.
func (r *Registry) AddProduct(p Product) error {
	if !idPattern.MatchString(p.ID) {
		return fmt.Errorf("product id %q: must be non-empty letters, digits, '_', '.' or '-'", p.ID)
	}
	r.mu.Lock()
	if _, dup := r.products[p.ID]; dup {
		r.mu.Unlock()
		return fmt.Errorf("product %s: already registered", p.ID)
	}
	for _, e := range r.devices {
		if p.MasterKey != "" && e.APIKey == p.MasterKey {
			r.mu.Unlock()
			return fmt.Errorf("product %s: master_key is already device %s's api_key", p.ID, e.ID)
		}
	}
	devs := p.Devices
	p.Devices = nil
	r.products[p.ID] = &p
	r.order = append(r.order, p.ID)
	r.ver++
	r.mu.Unlock()
	for _, d := range devs {
		if err := r.AddDevice(p.ID, d); err != nil {
			return err
		}
	}
	return nil
}

// AddDevice adds a device to an existing product. Device ids are unique
// across products, as the MQTT client id is.
func (r *Registry) AddDevice(productID string, d Device) error {
	if !idPattern.MatchString(d.ID) {
		return fmt.Errorf("device id %q: must be non-empty letters, digits, '_', '.' or '-'", d.ID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.products[productID]; !ok {
		return fmt.Errorf("device %s: product %s not registered", d.ID, productID)
	}
	if _, dup := r.devices[d.ID]; dup {
		return fmt.Errorf("device %s: already registered", d.ID)
	}
	if d.APIKey != "" && r.keyUsedLocked(d.APIKey) {
		return fmt.Errorf("device %s: api_key is already another key of the registry", d.ID)
	}
	if d.CreateTime.IsZero() {
		d.CreateTime = time.Now()
	}
	r.devices[d.ID] = &deviceEntry{Device: d, productID: productID}
	r.ver++
	return nil
}

// version changes whenever a product or a device is added.
func (r *Registry) version() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ver
}

// minMaskedSecret: a secret shorter than this is not masked inside event
// text (it would mask innocent bytes everywhere); console and reports show
// only secret.Hint of it anyway.
const minMaskedSecret = 4

// secrets lists every key and auth_info the events must never show,
// leaving out any that is too short or that appears inside a product or
// device id (masking it would hide the ids the events are about).
func (r *Registry) secrets() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ids strings.Builder // "\n" is in no id
	longest := 0
	for id := range r.products {
		ids.WriteString(id + "\n")
		longest = max(longest, len(id))
	}
	for id := range r.devices {
		ids.WriteString(id + "\n")
		longest = max(longest, len(id))
	}
	all := ids.String()
	var out []string
	add := func(s string) {
		if len(s) < minMaskedSecret || len(s) <= longest && strings.Contains(all, s) {
			return
		}
		out = append(out, s)
	}
	for _, p := range r.products {
		add(p.MasterKey)
		add(p.AccessKey)
		add(p.UserKey)
	}
	for _, d := range r.devices {
		add(d.AuthInfo)
		add(d.Key)
		add(d.APIKey)
	}
	return out
}

// SetDisabled enables or disables a device (a disabled device gets CONNACK 5).
func (r *Registry) SetDisabled(deviceID string, disabled bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.devices[deviceID]
	if !ok {
		return fmt.Errorf("device %s: not registered", deviceID)
	}
	e.Disabled = disabled
	return nil
}

// Product returns a product by id (without its devices).
func (r *Registry) Product(id string) (Product, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.products[id]
	if !ok {
		return Product{}, false
	}
	return *p, true
}

// Device returns a device and its product id.
func (r *Registry) Device(id string) (Device, string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.devices[id]
	if !ok {
		return Device{}, "", false
	}
	return e.Device, e.productID, true
}

// Products returns every product with its devices, in registration order
// (devices sorted by id).
func (r *Registry) Products() []Product {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Product, 0, len(r.order))
	for _, id := range r.order {
		p := *r.products[id]
		for _, e := range r.devices {
			if e.productID == id {
				p.Devices = append(p.Devices, e.Device)
			}
		}
		sort.Slice(p.Devices, func(i, j int) bool { return p.Devices[i].ID < p.Devices[j].ID })
		out = append(out, p)
	}
	return out
}

// productByKey finds the product whose master key is key.
func (r *Registry) productByKey(key string) (Product, bool) {
	if key == "" {
		return Product{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.products {
		if p.MasterKey == key {
			return *p, true
		}
	}
	return Product{}, false
}

// keyUsedLocked: key is a master key or a device's APIKey already (the
// caller holds r.mu).
func (r *Registry) keyUsedLocked(key string) bool {
	for _, p := range r.products {
		if p.MasterKey == key {
			return true
		}
	}
	for _, e := range r.devices {
		if e.APIKey == key {
			return true
		}
	}
	return false
}

// apiKey is what an HTTP api-key reaches: its product, and, for a
// device-level APIKey, only DeviceID.
type apiKey struct {
	Product
	DeviceID string // "" = the product's master key
}

// reaches: the key may act on the device.
func (k apiKey) reaches(deviceID string) bool { return k.DeviceID == "" || k.DeviceID == deviceID }

// keyScope finds what key reaches: a product's master key, or a device's
// APIKey (its device only).
func (r *Registry) keyScope(key string) (apiKey, bool) {
	if key == "" {
		return apiKey{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.products {
		if p.MasterKey == key {
			return apiKey{Product: *p}, true
		}
	}
	for _, e := range r.devices {
		if e.APIKey == key {
			return apiKey{Product: *r.products[e.productID], DeviceID: e.ID}, true
		}
	}
	return apiKey{}, false
}

// file shape, decoded strictly (KnownFields) for unknown keys.
type registryFile struct {
	Products []Product `yaml:"products"`
}

// LoadRegistry reads a registry YAML file. Unknown keys, missing or
// duplicate ids are errors naming the file and line.
func LoadRegistry(path string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return ParseRegistry(path, data)
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// ParseRegistry parses registry YAML; name is used in error messages.
func ParseRegistry(name string, data []byte) (*Registry, error) {
	var f registryFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty registry (want a products: list)", name)
		}
		// yaml says "yaml: line 5: field x not found"; turn it into file:line.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", name, m[1], yamlLine.ReplaceAllString(msg, ""))
		}
		// yaml gives no line when the stream itself ends early: that is
		// the file's last line.
		return nil, fmt.Errorf("%s:%d: %s", name, bytes.Count(data, []byte("\n"))+1, msg)
	}
	// A second pass over the node tree gives the line of each product and
	// device, for errors that the decoder cannot see (missing ids).
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s:1: %v", name, err) // the decoder above read it: not expected
	}
	pLines, dLines := nodeLines(&root)
	r := NewRegistry()
	for i, p := range f.Products {
		line := lineAt(pLines, i)
		if p.ID == "" {
			return nil, fmt.Errorf("%s:%d: product without id", name, line)
		}
		devs := p.Devices
		p.Devices = nil
		if err := p.ThingModel.resolve(filepath.Dir(name)); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		if err := r.AddProduct(p); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		for j, d := range devs {
			dl := line
			if i < len(dLines) {
				dl = lineAt(dLines[i], j)
			}
			if d.ID == "" {
				return nil, fmt.Errorf("%s:%d: device without id (product %s)", name, dl, p.ID)
			}
			if err := r.AddDevice(p.ID, d); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, dl, err)
			}
		}
	}
	if len(f.Products) == 0 {
		return nil, fmt.Errorf("%s: no products", name)
	}
	return r, nil
}

func lineAt(lines []int, i int) int {
	if i < len(lines) && lines[i] > 0 {
		return lines[i]
	}
	return 1 // never "file:0": the file's start is the best we know
}

// nodeLines returns the line of every products[i] and products[i].devices[j].
func nodeLines(root *yaml.Node) (products []int, devices [][]int) {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	seq := mapValue(doc, "products")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil, nil
	}
	for _, p := range seq.Content {
		if isNull(p) {
			continue // the decoder drops an empty item: keep the indexes aligned
		}
		products = append(products, p.Line)
		var dl []int
		if ds := mapValue(p, "devices"); ds != nil && ds.Kind == yaml.SequenceNode {
			for _, d := range ds.Content {
				if !isNull(d) {
					dl = append(dl, d.Line)
				}
			}
		}
		devices = append(devices, dl)
	}
	return products, devices
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Mask hides a secret for logs and consoles: the first two characters stay
// so a human can tell keys apart (secret.Hint).
func Mask(s string) string { return secret.Hint(s) }
