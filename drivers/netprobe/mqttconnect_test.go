package netprobe

import (
	"encoding/binary"
	"testing"
)

// connectPacket builds a CONNECT: level 4 or 5, with the given flags and fields.
func connectPacket(level byte, will bool, clientID string, user, pass *string) []byte {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	var flags byte = 0x02
	if will {
		flags |= 0x04
	}
	if user != nil {
		flags |= 0x80
	}
	if pass != nil {
		flags |= 0x40
	}
	var body []byte
	body = str(body, "MQTT")
	body = append(body, level, flags, 0, 30)
	if level == 5 {
		body = append(body, 5, 0x11, 0, 0, 0, 10) // properties: session expiry interval
	}
	body = str(body, clientID)
	if will {
		if level == 5 {
			body = append(body, 0)
		}
		body = str(body, "P/rd-1/status")
		body = str(body, `{"online":false}`)
	}
	if user != nil {
		body = str(body, *user)
	}
	if pass != nil {
		body = str(body, *pass)
	}
	pkt := []byte{0x10}
	for rl := len(body); ; {
		b := byte(rl % 128)
		rl /= 128
		if rl > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if rl == 0 {
			break
		}
	}
	return append(pkt, body...)
}

func TestParseMQTTConnect(t *testing.T) {
	u, p := "device", "s3cret-pw"
	long := string(make([]byte, 300)) // a remaining length of two bytes
	tests := []struct {
		name string
		pkt  []byte
		ok   bool
		want mqttConnect
	}{
		{"3.1.1 user and password", connectPacket(4, false, "rd-1", &u, &p), true,
			mqttConnect{protocol: "MQTT", level: 4, clientID: "rd-1", username: u, password: p, hasUsername: true, hasPassword: true}},
		{"5 with properties and will", connectPacket(5, true, "rd-2", &u, &p), true,
			mqttConnect{protocol: "MQTT", level: 5, clientID: "rd-2", username: u, password: p, hasUsername: true, hasPassword: true}},
		{"user only", connectPacket(4, true, "rd-3", &u, nil), true,
			mqttConnect{protocol: "MQTT", level: 4, clientID: "rd-3", username: u, hasUsername: true}},
		{"anonymous", connectPacket(4, false, "rd-4", nil, nil), true,
			mqttConnect{protocol: "MQTT", level: 4, clientID: "rd-4"}},
		{"long password", connectPacket(4, false, "rd-5", &u, &long), true,
			mqttConnect{protocol: "MQTT", level: 4, clientID: "rd-5", username: u, password: long, hasUsername: true, hasPassword: true}},
		{"truncated", connectPacket(4, false, "rd-1", &u, &p)[:20], false, mqttConnect{}},
		{"not connect", []byte{0x30, 2, 0, 0}, false, mqttConnect{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseMQTTConnect(tt.pkt)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
			if tt.ok && !looksLikeMQTTConnect(tt.pkt[:12]) {
				t.Errorf("the first 12 bytes do not look like a CONNECT")
			}
		})
	}
}

func TestClassifyStart(t *testing.T) {
	u, p := "a", "b"
	tests := []struct {
		name       string
		p          []byte
		fromClient bool
		udp        bool
		want       FlowClass
	}{
		{"TLS client hello", []byte{0x16, 3, 1, 0, 0x40}, true, false, ClassTLS},
		{"TLS application data mid-stream", []byte{0x17, 3, 3, 0, 0x40}, true, false, ClassTLS},
		{"MQTT CONNECT", connectPacket(4, false, "x", &u, &p), true, false, ClassMQTTCleartext},
		{"MQTT 3.1", append([]byte{0x10, 20, 0, 6}, "MQIsdp"...), true, false, ClassMQTTCleartext},
		{"MQTT-looking server bytes", connectPacket(4, false, "x", &u, &p), false, false, ClassCleartextOther},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), true, false, ClassCleartextOther},
		{"DTLS", []byte{0x16, 0xfe, 0xfd, 0, 0}, true, true, ClassDTLS},
		{"UDP text", []byte("hello"), true, true, ClassCleartextOther},
	}
	for _, tt := range tests {
		if got := classifyStart(tt.p, tt.fromClient, tt.udp); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}
