package read

import (
	"maps"
	"strings"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// FuzzParseInfo: any INFO text parses without panicking into fields whose
// names have no colon or line break.
func FuzzParseInfo(f *testing.F) {
	f.Add("# Memory\r\nused_memory:1048576\r\n# Clients\r\nconnected_clients:3\r\n")
	f.Add(":\r\n#\r\n\r\nkey:value:with:colons\r\n")
	f.Add(strings.Repeat("a", 5000) + ":1\r" + strings.Repeat("b", 5000) + ":2\n")
	f.Fuzz(func(t *testing.T, text string) {
		for k := range parseInfo(text) {
			if k == "" || strings.ContainsAny(k, ":\r\n") {
				t.Fatalf("field name %q", k)
			}
		}
	})
}

func TestParseInfo(t *testing.T) {
	text := "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\r\n# Clients\r\nconnected_clients:3\r\nnot a field\r\n:novalue\r\n"
	got := parseInfo(text)
	want := map[string]string{"used_memory": "1048576", "used_memory_human": "1.00M", "connected_clients": "3"}
	if !maps.Equal(got, want) {
		t.Errorf("parseInfo = %v, want %v", got, want)
	}
	if v, ok := billing.InfoInt(got, "used_memory_human"); ok {
		t.Errorf("InfoInt of a non-number = %d, true", v)
	}
	if _, ok := billing.InfoInt(got, "missing"); ok {
		t.Error("InfoInt of a missing field succeeded")
	}
}
