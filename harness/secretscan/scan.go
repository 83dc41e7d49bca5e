package secretscan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// chunkSize is how much of a reader or file is scanned at a time.
const chunkSize = 1 << 20

// ScanBytes returns every hit of secrets in b.
func ScanBytes(b []byte, secrets []string) []Hit {
	return Compile(secrets).ScanBytes(b)
}

// ScanReader returns every hit of secrets in what r yields, reading it in chunks: memory
// stays constant whatever the length of the input.
func ScanReader(r io.Reader, secrets []string) ([]Hit, error) {
	return Compile(secrets).ScanReader(r)
}

// ScanFile returns every hit of secrets in the file at path (a regular file, a disk
// image, a block device). Hits carry the path.
func ScanFile(ctx context.Context, path string, secrets []string) ([]Hit, error) {
	return Compile(secrets).ScanFile(ctx, path)
}

// ScanDir returns every hit of secrets in every regular file under dir, recursively.
// Symbolic links are not followed. Files that cannot be read are reported in the error
// (joined, each naming its path) and the scan goes on: the hits returned are valid even
// when the error is not nil, but a caller that must prove absence has to treat any error
// as "not proven".
func ScanDir(ctx context.Context, dir string, secrets []string) ([]Hit, error) {
	return Compile(secrets).ScanDir(ctx, dir)
}

// ScanBytes returns every hit in b.
func (s *Set) ScanBytes(b []byte) []Hit {
	st := s.NewStream()
	_, _ = st.Write(b)
	return st.Hits()
}

// ScanReader returns every hit in what r yields, reading it in chunks.
func (s *Set) ScanReader(r io.Reader) ([]Hit, error) {
	return s.scanReader(context.Background(), r, "")
}

// ScanFile returns every hit in the file at path. Hits carry the path.
func (s *Set) ScanFile(ctx context.Context, path string) ([]Hit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secretscan: %w", err)
	}
	defer f.Close()
	hits, err := s.scanReader(ctx, f, path)
	if err != nil {
		return hits, fmt.Errorf("secretscan: %s: %w", path, err)
	}
	return hits, nil
}

// ScanDir returns every hit in every regular file under dir, as the package-level ScanDir.
func (s *Set) ScanDir(ctx context.Context, dir string) ([]Hit, error) {
	var hits []Hit
	var errs []error
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			errs = append(errs, fmt.Errorf("secretscan: %s: %w", path, err))
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		h, err := s.ScanFile(ctx, path)
		hits = append(hits, h...)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			errs = append(errs, err)
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, fmt.Errorf("secretscan: scan %s: %w", dir, walkErr))
	}
	sortHits(hits)
	return hits, errors.Join(errs...)
}

func (s *Set) scanReader(ctx context.Context, r io.Reader, path string) ([]Hit, error) {
	st := s.NewStream()
	buf := make([]byte, chunkSize)
	for {
		if err := ctx.Err(); err != nil {
			return withPath(st.Hits(), path), err
		}
		n, err := r.Read(buf)
		_, _ = st.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return withPath(st.Hits(), path), err
		}
	}
	if st.Dropped() > 0 {
		return withPath(st.Hits(), path), fmt.Errorf("%w: %d more hits not kept", ErrTooManyHits, st.Dropped())
	}
	return withPath(st.Hits(), path), nil
}

// ErrTooManyHits says a scan found more than MaxHitsPerStream hits in one input and
// kept only the first ones.
var ErrTooManyHits = errors.New("too many hits")

func withPath(h []Hit, path string) []Hit {
	for i := range h {
		h[i].Path = path
	}
	return h
}
