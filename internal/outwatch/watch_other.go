//go:build !unix

package outwatch

import "os"

// watch does not watch where there is no poll(2).
func watch(*os.File, func()) func() { return nil }
