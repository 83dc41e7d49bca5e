package emu

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ctlClient speaks the control port of fixtures/qemu/init (see its ctl.go): "<id> <command>"
// a line, answered by "<id> ok <result>" or "<id> err <message>".
type ctlClient struct {
	unit string
	conn net.Conn
	r    *bufio.Reader
	seq  int
}

func newCtl(unit string, conn net.Conn) *ctlClient {
	return &ctlClient{unit: unit, conn: conn, r: bufio.NewReader(conn)}
}

// errCtl marks an error answer of the control port.
var errCtl = errors.New("control port refused")

// call sends one command and returns the result of its answer. Answers to earlier commands
// that came late are skipped.
func (c *ctlClient) call(ctx context.Context, cmd string) (string, error) {
	c.seq++
	id := fmt.Sprintf("h%d", c.seq)
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = c.conn.SetDeadline(dl)
	if _, err := fmt.Fprintf(c.conn, "%s %s\n", id, cmd); err != nil {
		return "", fmt.Errorf("%s: control port: %s: %w", c.unit, cmd, err)
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("%s: control port: %s: %w", c.unit, cmd, err)
		}
		rid, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		if rid != id {
			continue
		}
		status, result, _ := strings.Cut(rest, " ")
		switch status {
		case "ok":
			return result, nil
		case "err":
			return "", fmt.Errorf("%s: control port: %s: %w: %s", c.unit, cmd, errCtl, result)
		default:
			return "", fmt.Errorf("%s: control port: %s: bad answer %q", c.unit, cmd, line)
		}
	}
}

func (c *ctlClient) close() { c.conn.Close() }

// keystore reads the unit's key store files (name to content) through the control port.
func (c *ctlClient) keystore(ctx context.Context) (map[string][]byte, error) {
	res, err := c.call(ctx, "keystore")
	if err != nil {
		return nil, err
	}
	var enc map[string]string
	if err := json.Unmarshal([]byte(res), &enc); err != nil {
		return nil, fmt.Errorf("%s: control port: keystore: %w", c.unit, err)
	}
	files := make(map[string][]byte, len(enc))
	for name, b64 := range enc {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s: control port: keystore: %s: %w", c.unit, name, err)
		}
		files[name] = b
	}
	return files, nil
}

// mirror makes dir hold exactly files: it writes each one (atomically) and removes the
// regular files that are no longer there.
func mirror(dir string, files map[string][]byte) error {
	for name, b := range files {
		clean := path.Clean(name)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("key store mirror: refusing path %q", name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			return os.Remove(p)
		}
		return nil
	})
}
