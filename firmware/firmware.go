// Package firmware holds the MicroPython application that runs on the board
// (an LED controller that logs in to OneNET over MQTT and echoes every event
// on its serial port), the tutorial's original program for comparison runs,
// and the config.json the flasher writes next to them.
package firmware

import (
	"embed"
	"io/fs"
	"path"
)

// Version is the firmware's version; the board prints it in its boot line
// ("HIL boot fw=<Version> id=<device id>"). A test keeps it equal to app.py's.
const Version = "1.0.0"

// ConfigPath is where the firmware reads its configuration on the board.
const ConfigPath = "config.json"

//go:embed board/*.py
var boardFS embed.FS

//go:embed tutorial/*.py
var tutorialFS embed.FS

// Files returns the firmware by flash path (the board's filesystem root):
// boot.py, main.py, app.py and mqtt.py. The caller owns the returned map and
// slices; config.json is not included (see Config.JSON).
func Files() map[string][]byte {
	return readAll(boardFS, "board")
}

func readAll(fsys embed.FS, dir string) map[string][]byte {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		panic("firmware: embedded files missing: " + err.Error())
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			panic("firmware: embedded file unreadable: " + err.Error())
		}
		files[e.Name()] = b
	}
	return files
}
