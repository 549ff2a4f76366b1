package link

import (
	"fmt"
	"strings"

	"go.bug.st/serial/enumerator"
)

// Bridge is a USB-serial bridge chip found on ESP8266 boards.
type Bridge struct {
	VID, PID string // upper-case hex, as the enumerator reports them
	Chip     string
}

// ESP8266Bridges are the USB ids of the bridges ESP8266 boards use: the
// TPYBoard v202 and most others carry a CH340.
var ESP8266Bridges = []Bridge{
	{"1A86", "7523", "CH340"},
	{"10C4", "EA60", "CP210x"},
	{"0403", "6001", "FTDI FT232"},
}

// PortInfo describes one serial port on this machine.
type PortInfo struct {
	Name         string
	IsUSB        bool
	VID, PID     string
	SerialNumber string
	Product      string
	Manufacturer string
	Chip         string // the bridge chip when the USB id is an ESP8266 board's
}

// LooksLikeESP8266 tells whether the port's USB id is one of ESP8266Bridges.
func (p PortInfo) LooksLikeESP8266() bool { return p.Chip != "" }

// Classify fills Chip from the USB id.
func Classify(p PortInfo) PortInfo {
	p.Chip = ""
	for _, b := range ESP8266Bridges {
		if p.IsUSB && strings.EqualFold(p.VID, b.VID) && strings.EqualFold(p.PID, b.PID) {
			p.Chip = b.Chip
		}
	}
	return p
}

// Ports lists the serial ports of this machine with their USB details.
func Ports() ([]PortInfo, error) {
	list, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	out := make([]PortInfo, 0, len(list))
	for _, d := range list {
		out = append(out, Classify(PortInfo{
			Name: d.Name, IsUSB: d.IsUSB, VID: strings.ToUpper(d.VID), PID: strings.ToUpper(d.PID),
			SerialNumber: d.SerialNumber, Product: d.Product, Manufacturer: d.Manufacturer,
		}))
	}
	return out, nil
}

// PickBoard chooses the one port that looks like an ESP8266 board; none or
// several is an error that lists what was seen.
func PickBoard(ports []PortInfo) (PortInfo, error) {
	var boards []PortInfo
	for _, p := range ports {
		if p.LooksLikeESP8266() {
			boards = append(boards, p)
		}
	}
	switch len(boards) {
	case 1:
		return boards[0], nil
	case 0:
		var ids []string
		for _, b := range ESP8266Bridges {
			ids = append(ids, fmt.Sprintf("%s %s:%s", b.Chip, b.VID, b.PID))
		}
		return PortInfo{}, fmt.Errorf("no ESP8266 board found (looked for USB ids %s); ports seen: %s",
			strings.Join(ids, ", "), describe(ports))
	default:
		return PortInfo{}, fmt.Errorf("%d ESP8266-looking boards found (%s): choose one with --port or HIL_PORT",
			len(boards), describe(boards))
	}
}

// FindBoard lists the ports and picks the ESP8266 board among them.
func FindBoard() (PortInfo, error) {
	ports, err := Ports()
	if err != nil {
		return PortInfo{}, err
	}
	return PickBoard(ports)
}

func describe(ports []PortInfo) string {
	if len(ports) == 0 {
		return "none"
	}
	var s []string
	for _, p := range ports {
		if p.IsUSB {
			s = append(s, fmt.Sprintf("%s (%s:%s)", p.Name, p.VID, p.PID))
		} else {
			s = append(s, p.Name)
		}
	}
	return strings.Join(s, ", ")
}
