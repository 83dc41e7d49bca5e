// Command fakedev is a stand-in for the reference device, for the bench's own tests only.
// It speaks just enough of the bench contract (docs/SIM.md): it takes the same arguments
// (`fakedev __refdev --hw DIR --data DIR --console-fd 3 --notify-fd 4 --listen IP
// [--listen IP6] [--flaw NAME]...`), reads <hw>/factory.json, listens on <first listen>:8443 (and :2323 with the
// debug-on flaw), connects to the broker over TLS with its factory account (client ID = its
// ID, retained online status), writes `ready {"id","boot"}` to the notify fd after every
// boot, and answers a few console commands (provision, pubkey, ping, reboot, crash).
//
// Flaws: debug-on, plaintext-mqtt, wrong-mqtt-password, no-mqtt, exit-after-ready,
// never-ready, no-prompt, shared-id, id-changes-on-reboot. Any other flaw: exit 2 with a message on stderr, as the real device.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

type factory struct {
	Seed         string `json:"seed"`
	BrokerTLS    string `json:"broker_tls"`
	BrokerPlain  string `json:"broker_plain"`
	BrokerCAPEM  string `json:"broker_ca_pem"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTPassword string `json:"mqtt_password"`
	TopicPrefix  string `json:"topic_prefix"`
	ModelLabel   string `json:"model_label"`
}

type flawList []string

func (f *flawList) String() string     { return strings.Join(*f, ",") }
func (f *flawList) Set(v string) error { *f = append(*f, v); return nil }

var known = map[string]bool{
	"debug-on": true, "plaintext-mqtt": true, "wrong-mqtt-password": true, "no-mqtt": true,
	"exit-after-ready": true, "never-ready": true, "no-prompt": true,
	"shared-id": true, "id-changes-on-reboot": true,
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "__refdev" {
		fmt.Fprintln(os.Stderr, "fakedev: want __refdev as first argument")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("fakedev", flag.ContinueOnError)
	hw := fs.String("hw", "", "")
	data := fs.String("data", "", "")
	consoleFD := fs.Int("console-fd", -1, "")
	notifyFD := fs.Int("notify-fd", -1, "")
	var listens flawList // repeatable, as the device's (one per address family): the first serves
	fs.Var(&listens, "listen", "")
	var flaws flawList
	fs.Var(&flaws, "flaw", "")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	has := map[string]bool{}
	for _, f := range flaws {
		if !known[f] {
			fmt.Fprintf(os.Stderr, "refdev: unknown flaw %q (hilt sim --list-flaws lists them)\n", f)
			os.Exit(2)
		}
		has[f] = true
	}
	if *consoleFD < 0 || *notifyFD < 0 || *hw == "" || *data == "" || len(listens) == 0 {
		fmt.Fprintln(os.Stderr, "fakedev: missing arguments")
		os.Exit(2)
	}
	console := os.NewFile(uintptr(*consoleFD), "console")
	notify := os.NewFile(uintptr(*notifyFD), "notify")

	raw, err := os.ReadFile(filepath.Join(*hw, "factory.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakedev:", err)
		os.Exit(2)
	}
	var f factory
	if err := json.Unmarshal(raw, &f); err != nil {
		fmt.Fprintln(os.Stderr, "fakedev: factory.json:", err)
		os.Exit(2)
	}
	boot := 1
	if b, err := os.ReadFile(filepath.Join(*data, "boots")); err == nil {
		boot, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		boot++
	}
	_ = os.WriteFile(filepath.Join(*data, "boots"), []byte(strconv.Itoa(boot)), 0o600)
	idSource := f.Seed
	switch {
	case has["shared-id"]:
		idSource = "the same in every unit"
	case has["id-changes-on-reboot"]:
		idSource += strconv.Itoa(boot)
	}
	sum := sha256.Sum256([]byte(idSource))
	id := "rd-" + hex.EncodeToString(sum[:8])
	_ = os.WriteFile(filepath.Join(*hw, "label.txt"), []byte("Model: "+f.ModelLabel+"\nS/N: "+id+"\n"), 0o644)

	fmt.Fprintf(console, "fakedev boot %d\r\nid %s\r\n", boot, id)

	var lns []net.Listener
	ports := []string{"8443"}
	if has["debug-on"] {
		ports = append(ports, "2323")
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(listens[0], p))
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakedev: listen:", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "fakedev "+id+"\n")
				c.Close()
			}
		}()
	}

	var client paho.Client
	if !has["no-mqtt"] {
		client = connectMQTT(f, id, has)
	}

	if has["never-ready"] {
		select {}
	}
	fmt.Fprintf(notify, "ready {\"id\":%q,\"boot\":%d}\n", id, boot)
	if has["exit-after-ready"] {
		fmt.Fprintln(os.Stderr, "fakedev: exiting after ready as asked")
		os.Exit(3)
	}
	io.WriteString(console, "refdev ready\r\n")
	prompt := "refdev> "
	if has["no-prompt"] {
		prompt = ""
	}
	io.WriteString(console, prompt)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		if client != nil {
			client.Disconnect(100)
		}
		os.Exit(0)
	}()

	provisioned := fileExists(filepath.Join(*data, "provisioned"))
	sc := bufio.NewScanner(console)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		args := strings.Split(line, " ")
		switch args[0] {
		case "":
		case "ping":
			io.WriteString(console, "OK {\"pong\":true}\r\n")
		case "id":
			fmt.Fprintf(console, "OK {\"id\":%q}\r\n", id)
		case "pubkey":
			fmt.Fprintf(console, "OK {\"id\":%q,\"pubkey\":%q}\r\n", id, base64.StdEncoding.EncodeToString(sum[:32]))
		case "provision":
			switch {
			case provisioned:
				io.WriteString(console, "ERR state already provisioned\r\n")
			case len(args) != 3 || len(args[2]) < 10:
				io.WriteString(console, "ERR invalid password too short\r\n")
			default:
				_ = os.WriteFile(filepath.Join(*data, "provisioned"), []byte(args[1]), 0o600)
				provisioned = true
				fmt.Fprintf(console, "OK {\"user\":%q}\r\n", args[1])
			}
		case "crash":
			fmt.Fprintln(os.Stderr, "fakedev: crashing as asked")
			os.Exit(3)
		case "reboot":
			io.WriteString(console, "OK {}\r\n")
			if client != nil {
				client.Disconnect(100)
			}
			for _, ln := range lns {
				ln.Close()
			}
			exe, _ := os.Executable()
			err := syscall.Exec(exe, os.Args, os.Environ())
			fmt.Fprintln(os.Stderr, "fakedev: re-exec:", err)
			os.Exit(1)
		default:
			fmt.Fprintf(console, "ERR unknown-command %s\r\n", args[0])
		}
		io.WriteString(console, prompt)
	}
	select {}
}

func connectMQTT(f factory, id string, has map[string]bool) paho.Client {
	prefix := f.TopicPrefix
	status := prefix + "/" + id + "/status"
	o := paho.NewClientOptions().
		SetClientID(id).
		SetUsername(f.MQTTUsername).
		SetPassword(f.MQTTPassword).
		SetBinaryWill(status, []byte(`{"id":"`+id+`","online":false}`), 1, true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.Publish(status, 1, true, `{"id":"`+id+`","online":true}`)
		})
	if has["wrong-mqtt-password"] {
		o.SetPassword("not-the-factory-password")
	}
	if has["plaintext-mqtt"] {
		o.AddBroker("tcp://" + f.BrokerPlain)
	} else {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(f.BrokerCAPEM))
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		o.AddBroker("ssl://" + f.BrokerTLS)
	}
	c := paho.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t := c.Connect() // retried in the background until it succeeds
	select {
	case <-t.Done():
	case <-ctx.Done():
	}
	return c
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
