// Package scenarios holds the scenario files of the standard suite. They are
// embedded so that an installed `hil run` has them outside a checkout, and
// `go test ./scenarios` plays them.
package scenarios

import "embed"

// Suite is the standard suite: every *.yaml file of this folder.
//
//go:embed *.yaml
var Suite embed.FS
