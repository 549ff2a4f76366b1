package dut

// kinds are the board kinds Open knows. A new kind is a new file with its
// Opener and one line here.
var kinds = map[string]Kind{
	KindVirtual: {Open: openVirtual, Sandboxed: true},
	KindSerial:  {Open: openSerial},
}
