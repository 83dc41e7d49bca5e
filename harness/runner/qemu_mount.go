package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// mountImage mounts the ext4 file system of a disk image, whose unit is off, on the folder
// files/ beside the image (the same folder every time: a check may keep paths from one
// mount to the next) and returns the folder.
func mountImage(ctx context.Context, img string) (string, error) {
	dir := filepath.Join(filepath.Dir(img), "files")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("mount %s: %w", img, err)
	}
	out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "loop,nodev,nosuid,noexec", img, dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mount %s on %s: %w: %s", img, dir, err, bytes.TrimSpace(out))
	}
	return dir, nil
}

// unmountImage unmounts what mountImage mounted; the loop device goes with it.
func unmountImage(ctx context.Context, dir string) error {
	out, err := exec.CommandContext(ctx, "umount", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unmount %s: %w: %s", dir, err, bytes.TrimSpace(out))
	}
	return nil
}
