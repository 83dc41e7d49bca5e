// Package mqtttest supports tests of code that uses package mqtt: a Fake client (with a
// broker in memory that the test plays the device on) and TestClient, a conformance
// check that any mqtt.Client can be held to (the Paho client against the embedded
// broker, the Fake).
//
//	go test ./drivers/mqtt/mqtttest/
package mqtttest
