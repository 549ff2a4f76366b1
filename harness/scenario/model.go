package scenario

// Model is the LED model every expectation is predicted from:
// on -> 1, off -> 0, toggle -> flip, anything else -> unchanged,
// power-up -> 0.
type Model struct {
	Level int
}

// Apply feeds one received payload to the model and returns the new level
// and whether the payload was a command.
func (m *Model) Apply(payload string) (level int, command bool) {
	switch payload {
	case "on":
		m.Level = 1
	case "off":
		m.Level = 0
	case "toggle":
		m.Level = 1 - m.Level
	default:
		return m.Level, false
	}
	return m.Level, true
}

// PowerUp is the board starting: the LED is off.
func (m *Model) PowerUp() { m.Level = 0 }
