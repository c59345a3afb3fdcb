package loopback

import (
	"testing"
)

func TestIsAddr(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:6963": true, "localhost:1": true, "[::1]:0": true, "0.0.0.0:6963": false, ":6963": false, "10.0.0.1:1": false} {
		if got := IsAddr(addr); got != want {
			t.Errorf("IsAddr(%q) = %v", addr, got)
		}
	}
}
