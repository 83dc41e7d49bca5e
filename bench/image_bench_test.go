package bench_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/hilt-project/hilt/harness/image"
)

// imageSizes are the payload sizes measured: the default, a small firmware, a large one.
var imageSizes = []struct {
	name string
	n    int
}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}, {"16MiB", 16 << 20}}

// BenchmarkImageBuild measures image.Build, signed and unsigned, next to its floor: the
// SU checks build a dozen images per device per run. The floor ("hash+sign") is the work
// no image builder can skip, hashing the payload and signing a manifest; it runs right
// after the builds of the same size, so that it sees the same load.
func BenchmarkImageBuild(b *testing.B) {
	key := image.NewKey()
	manifest := []byte(fmt.Sprintf(`{"format":1,"model":"Refdev Thermostat","version":"1.2.3","length":%d,"sha256":"%064x"}`, 1<<20, 0))
	for _, sz := range imageSizes {
		for _, signed := range []bool{true, false} {
			name := sz.name + "/unsigned"
			k := ed25519.PrivateKey(nil)
			if signed {
				name, k = sz.name+"/signed", key
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(sz.n))
				for b.Loop() {
					if _, err := image.Build(image.Spec{Model: "Refdev Thermostat", Version: "1.2.3", Nonce: "0123456789abcdef01234567", PayloadSize: sz.n, Key: k}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		payload := make([]byte, sz.n)
		b.Run(sz.name+"/hash+sign", func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				sum := sha256.Sum256(payload)
				_ = ed25519.Sign(key, append(manifest, sum[:1]...))
			}
		})
	}
}

// BenchmarkImageTamper measures the defect makers on a 1 MiB image: one flipped payload
// byte (a copy of the image) and the header walk it starts with.
func BenchmarkImageTamper(b *testing.B) {
	img, err := image.Build(image.Spec{Model: "Refdev Thermostat", Version: "1.2.3", Nonce: "00", PayloadSize: 1 << 20, Key: image.NewKey()})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("FlipPayloadByte", func(b *testing.B) {
		b.SetBytes(int64(len(img.Bytes)))
		for b.Loop() {
			if _, err := image.FlipPayloadByte(img.Bytes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PayloadOffset", func(b *testing.B) {
		for b.Loop() {
			if _, err := image.PayloadOffset(img.Bytes); err != nil {
				b.Fatal(err)
			}
		}
	})
}
