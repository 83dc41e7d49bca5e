package netprobe

import "encoding/binary"

// mqttConnect is what an MQTT CONNECT packet carries that the analysis reports.
type mqttConnect struct {
	protocol                 string // "MQTT" (3.1.1, 5) or "MQIsdp" (3.1)
	level                    byte
	clientID                 string
	username, password       string
	hasUsername, hasPassword bool
}

// looksLikeMQTTConnect reports whether b starts like an MQTT CONNECT: packet type 1
// with no flags, a remaining length, and the protocol name "MQTT" or "MQIsdp". It needs
// only the first dozen bytes.
func looksLikeMQTTConnect(b []byte) bool {
	if len(b) < 2 || b[0] != 0x10 {
		return false
	}
	_, n, ok := mqttVarint(b[1:])
	if !ok {
		return false
	}
	p := b[1+n:]
	if len(p) < 2 {
		return false
	}
	l := int(binary.BigEndian.Uint16(p))
	if (l != 4 && l != 6) || len(p) < 2+l {
		return false
	}
	name := string(p[2 : 2+l])
	return name == "MQTT" || name == "MQIsdp"
}

// mqttConnectLen returns the length of the CONNECT packet at the start of b (header
// included), if b holds enough of it to tell.
func mqttConnectLen(b []byte) (int, bool) {
	if len(b) < 2 || b[0] != 0x10 {
		return 0, false
	}
	rl, n, ok := mqttVarint(b[1:])
	if !ok {
		return 0, false
	}
	return 1 + n + rl, true
}

// mqttVarint decodes an MQTT remaining length (1 to 4 bytes).
func mqttVarint(b []byte) (v, n int, ok bool) {
	mult := 1
	for i := 0; i < 4 && i < len(b); i++ {
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// parseMQTTConnect decodes the CONNECT packet at the start of b (MQTT 3.1, 3.1.1 and
// 5). It reports false if b does not hold a whole, well-formed CONNECT.
func parseMQTTConnect(b []byte) (mqttConnect, bool) {
	var c mqttConnect
	total, ok := mqttConnectLen(b)
	if !ok || total > len(b) {
		return c, false
	}
	rl, n, _ := mqttVarint(b[1:])
	r := reader{b: b[1+n : 1+n+rl]}
	name, ok := r.str()
	if !ok || (name != "MQTT" && name != "MQIsdp") {
		return c, false
	}
	c.protocol = name
	level, ok1 := r.byte()
	flags, ok2 := r.byte()
	_, ok3 := r.u16() // keep alive
	if !ok1 || !ok2 || !ok3 {
		return c, false
	}
	c.level = level
	if level == 5 && !r.skipProperties() {
		return c, false
	}
	if c.clientID, ok = r.str(); !ok {
		return c, false
	}
	if flags&0x04 != 0 { // will
		if level == 5 && !r.skipProperties() {
			return c, false
		}
		if _, ok := r.str(); !ok { // will topic
			return c, false
		}
		if _, ok := r.bin(); !ok { // will payload
			return c, false
		}
	}
	if flags&0x80 != 0 {
		if c.username, ok = r.str(); !ok {
			return c, false
		}
		c.hasUsername = true
	}
	if flags&0x40 != 0 {
		pw, ok := r.bin()
		if !ok {
			return c, false
		}
		c.password, c.hasPassword = string(pw), true
	}
	return c, true
}

type reader struct{ b []byte }

func (r *reader) byte() (byte, bool) {
	if len(r.b) < 1 {
		return 0, false
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v, true
}

func (r *reader) u16() (int, bool) {
	if len(r.b) < 2 {
		return 0, false
	}
	v := int(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v, true
}

func (r *reader) bin() ([]byte, bool) {
	l, ok := r.u16()
	if !ok || len(r.b) < l {
		return nil, false
	}
	v := r.b[:l]
	r.b = r.b[l:]
	return v, true
}

func (r *reader) str() (string, bool) {
	v, ok := r.bin()
	return string(v), ok
}

func (r *reader) skipProperties() bool {
	l, n, ok := mqttVarint(r.b)
	if !ok || len(r.b) < n+l {
		return false
	}
	r.b = r.b[n+l:]
	return true
}
