package sim

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Copies of the fixtures the bench needs, so that hilt works from any folder. A test fails
// when they differ from the originals; refresh them with `go generate ./harness/sim`.
//
//go:generate sh -c "cp ../../fixtures/declarations/refdev.yaml assets/declarations/ && cp ../../fixtures/keys/TEST-ONLY-maker-update.key assets/keys/ && cp ../../fixtures/sbom/refdev.cdx.json assets/sbom/"
//go:embed assets
var assets embed.FS

// modulePath identifies the repository when looking for fixtures next to the executable
// or the working folder.
const modulePath = "github.com/hilt-project/hilt"

// Fixture paths, relative to the repository root (and to the run folder, where the bench
// writes its copies with the same layout so that relative references keep working).
const (
	declarationsRel = "fixtures/declarations/refdev.yaml"
	signingKeyRel   = "fixtures/keys/TEST-ONLY-maker-update.key"
	sbomRel         = "fixtures/sbom/refdev.cdx.json"
)

// fixtureFiles maps each fixture to its embedded copy.
var fixtureFiles = map[string]string{
	declarationsRel: "assets/declarations/refdev.yaml",
	signingKeyRel:   "assets/keys/TEST-ONLY-maker-update.key",
	sbomRel:         "assets/sbom/refdev.cdx.json",
}

// findRepo returns the root of a hilt checkout that holds the working folder or the
// executable, or "".
func findRepo(exe string) string {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe != "" {
		if abs, err := filepath.Abs(exe); err == nil {
			starts = append(starts, filepath.Dir(abs))
		}
	}
	for _, dir := range starts {
		for {
			if isHiltRoot(dir) {
				return dir
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

func isHiltRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module")) == modulePath
		}
	}
	return false
}

// installFixtures writes the fixtures into runDir with the repository's layout, from the
// checkout at repo when there is one (so edits take effect without a rebuild), else from
// the embedded copies. It returns the absolute paths by fixture.
func installFixtures(runDir, repo string) (map[string]string, error) {
	out := map[string]string{}
	for rel, embedded := range fixtureFiles {
		var b []byte
		var err error
		if repo != "" {
			b, err = os.ReadFile(filepath.Join(repo, rel))
		}
		if repo == "" || errors.Is(err, fs.ErrNotExist) {
			b, err = assets.ReadFile(embedded)
		}
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", rel, err)
		}
		dst := filepath.Join(runDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", rel, err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".key") {
			mode = 0o600
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", rel, err)
		}
		out[rel] = dst
	}
	return out, nil
}
