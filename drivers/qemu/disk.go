package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNoMkfs: mkfs.ext4 is not installed.
var ErrNoMkfs = errors.New("mkfs.ext4 not found: install e2fsprogs")

// MakeExt4 creates the raw disk image path of sizeMB MiB (sparse) holding an ext4 file system
// labelled label (the guest's /init finds its disks by label), with the files of the host
// directory from copied in when from is not empty (mkfs.ext4 -d). Inode tables and the
// journal are initialised now, so that the guest's kernel writes nothing behind the
// firmware's back.
func MakeExt4(ctx context.Context, path string, sizeMB int, label, from string) error {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return fmt.Errorf("disk %s: %w", path, ErrNoMkfs)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("disk %s: %w", path, err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("disk %s: %w", path, err)
	}
	args := []string{"-q", "-F", "-L", label, "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0"}
	if from != "" {
		args = append(args, "-d", from)
	}
	args = append(args, path)
	cmd := exec.CommandContext(ctx, mkfs, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("disk %s: mkfs.ext4 %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
