package emu

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeInit answers the control port as fixtures/qemu/init does, with a stale answer first.
func fakeInit(t *testing.T, conn net.Conn) {
	t.Helper()
	go func() {
		defer conn.Close()
		conn.Write([]byte("h0 ok stale\n"))
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			id, cmd, _ := strings.Cut(sc.Text(), " ")
			switch cmd {
			case "keystore":
				conn.Write([]byte(id + ` ok {"label.txt":"TW9kZWw6IFgKUy9OOiByZC0xCg==","sub/key":"AAE="}` + "\n"))
			case "ping":
				conn.Write([]byte(id + " ok pong\n"))
			default:
				conn.Write([]byte(id + " err unknown command\n"))
			}
		}
	}()
}

func TestCtl(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "ctl.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fakeInit(t, server)
	c := newCtl("dev1", client)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if got, err := c.call(ctx, "ping"); err != nil || got != "pong" {
		t.Errorf("ping: got %q, %v; want pong (the stale answer skipped)", got, err)
	}
	if _, err := c.call(ctx, "bogus"); !errors.Is(err, errCtl) || !strings.Contains(err.Error(), "dev1") {
		t.Errorf("bogus: got %v, want errCtl naming dev1", err)
	}
	files, err := c.keystore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "datakey"), []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := mirror(dir, files); err != nil {
		t.Fatal(err)
	}
	label, err := os.ReadFile(filepath.Join(dir, "label.txt"))
	if err != nil || string(label) != "Model: X\nS/N: rd-1\n" {
		t.Errorf("label.txt: got %q, %v", label, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "key")); err != nil || string(b) != "\x00\x01" {
		t.Errorf("sub/key: got %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "datakey")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("datakey: a file gone from the key store is still in the copy (%v)", err)
	}
}

func TestMirrorRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../x", "/etc/passwd", ".."} {
		if err := mirror(t.TempDir(), map[string][]byte{name: nil}); err == nil {
			t.Errorf("mirror accepted %q", name)
		}
	}
}
