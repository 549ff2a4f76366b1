package broker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadRegistry(t *testing.T) {
	r, err := LoadRegistry("testdata/registry.yaml")
	require.NoError(t, err)
	ps := r.Products()
	require.Len(t, ps, 2)
	assert.Equal(t, "TurnipRobot", ps[0].Name)
	require.Len(t, ps[0].Devices, 2)
	d, pid, ok := r.Device("503367130")
	require.True(t, ok)
	assert.Equal(t, "386427", pid)
	assert.True(t, d.Disabled)
	assert.Equal(t, "spare", d.Title)
	assert.False(t, d.CreateTime.IsZero())
}

func TestLoadRegistryErrorsNameFileAndLine(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown product key": {"products:\n  - id: \"1\"\n    master_kee: x\n", "reg.yaml:3: field master_kee not found"},
		"unknown device key":  {"products:\n  - id: \"1\"\n    devices:\n      - id: \"2\"\n        authinfo: x\n", "reg.yaml:5: field authinfo not found"},
		"unknown top key":     {"product:\n  - id: \"1\"\n", "reg.yaml:1: field product not found"},
		"product without id":  {"products:\n  - id: \"1\"\n  - name: x\n", "reg.yaml:3: product without id"},
		"device without id":   {"products:\n  - id: \"1\"\n    devices:\n      - title: a\n", "reg.yaml:4: device without id (product 1)"},
		"duplicate device":    {"products:\n  - id: \"1\"\n    devices:\n      - id: \"2\"\n      - id: \"2\"\n", "reg.yaml:5: device 2: already registered"},
		"duplicate product":   {"products:\n  - id: \"1\"\n  - id: \"1\"\n", "reg.yaml:3: product 1: already registered"},
		"bad yaml":            {"products: [\n", "reg.yaml:"},
		"empty":               {"", "reg.yaml: empty registry"},
		"no products":         {"products: []\n", "reg.yaml: no products"},
	}
	dir := t.TempDir()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "reg.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
			_, err := LoadRegistry(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Join(dir, tc.want))
		})
	}
	_, err := LoadRegistry(filepath.Join(dir, "missing.yaml"))
	assert.ErrorContains(t, err, "missing.yaml")
}

func TestMask(t *testing.T) {
	assert.Equal(t, "****", Mask("abc"))
	assert.Equal(t, "tp****", Mask("tpy-001"))
	assert.NotContains(t, Mask(DemoMasterKey), "master")
}

// An empty list item is dropped by the decoder; the line of the device
// after it must still be its own (found by FuzzParseRegistry).
func TestRegistryLineAfterEmptyItem(t *testing.T) {
	_, err := ParseRegistry("reg.yaml", []byte("products:\n  -\n  - id: \"0\"\n    devices:\n      -\n      - auth_info: x\n"))
	require.Error(t, err)
	assert.Equal(t, "reg.yaml:6: device without id (product 0)", err.Error())
}
