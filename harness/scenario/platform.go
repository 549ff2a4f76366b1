package scenario

import (
	"fmt"
	"strings"
)

// Platform is the OneNET service the board logs in to (broker/README.md,
// "What OneNET does").
// The same scenario runs on either; the platform decides the topic a
// command arrives on (the echo's via=) and the CONNACK code that refuses
// wrong credentials, so scenario files name neither.
type Platform string

const (
	// Legacy is the tutorial's multi-protocol MQTT: password = key,
	// commands on $creq/{uuid}.
	Legacy Platform = "legacy"
	// Studio is OneNET Studio: password = token, commands on
	// $sys/{pid}/{name}/cmd/request/{uuid}.
	Studio Platform = "studio"
)

// Platforms lists every platform, legacy first.
var Platforms = []Platform{Legacy, Studio}

// ParsePlatform reads a platform name; "" is Legacy.
func ParsePlatform(s string) (Platform, error) {
	switch Platform(s) {
	case "", Legacy:
		return Legacy, nil
	case Studio:
		return Studio, nil
	}
	return "", fmt.Errorf("platform %q: want %s or %s", s, Legacy, Studio)
}

// RCBadCredentials in a step's RC stands for the platform's code for wrong
// credentials (`rc: bad_credentials` in a file); the runner resolves it.
const RCBadCredentials = -2

// BadCredentialsRC is the CONNACK code a login with wrong credentials gets:
// legacy 4 (bad user name or password: a key the broker does not know),
// studio 5 (not authorized: a token signed with another key).
func (p Platform) BadCredentialsRC() int {
	if p == Studio {
		return 5
	}
	return 4
}

// ResolveRC turns RCBadCredentials into the platform's code; other values
// are returned as they are.
func (p Platform) ResolveRC(rc int) int {
	if rc == RCBadCredentials {
		return p.BadCredentialsRC()
	}
	return rc
}

// CommandTopic reports whether via is a topic the platform pushes commands
// on (creq and http sends arrive there; topic sends never do).
func (p Platform) CommandTopic(via string) bool {
	if p == Studio {
		return strings.HasPrefix(via, "$sys/") && strings.Contains(via, "/cmd/request/")
	}
	return strings.HasPrefix(via, "$creq/")
}

// PropertyTopic reports whether via is the topic a property set arrives on
// (studio's $sys/{pid}/{name}/thing/property/set).
func (p Platform) PropertyTopic(via string) bool {
	return p == Studio && strings.HasPrefix(via, "$sys/") && strings.HasSuffix(via, "/thing/property/set")
}

// commandTopicName describes CommandTopic for messages.
func (p Platform) commandTopicName() string {
	if p == Studio {
		return "$sys/{pid}/{name}/cmd/request/{uuid}"
	}
	return "$creq/{uuid}"
}

// SkipReason says why sc cannot run on the platform, or "".
func (p Platform) SkipReason(sc *Scenario) string {
	if p != Studio {
		for _, st := range sc.Steps {
			if st.Kind == SendStep && st.Channel == Property {
				return "the legacy platform has no thing model: channel property is OneNET Studio's thing/property/set (set-device-property)"
			}
		}
		return ""
	}
	if sc.Profile == "tutorial" {
		return "the tutorial's mqtt.py logs in to the legacy platform (a key as password, $creq); it has no OneNET Studio mode"
	}
	for _, st := range sc.Steps {
		if st.Kind == SendStep && st.QoS == 1 {
			return "OneNET Studio keeps no command for an offline device (its synchronous command API answers \"device not online\"); qos 1 is the legacy POST /cmds feature"
		}
	}
	return ""
}
