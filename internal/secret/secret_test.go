package secret

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("SECRET_TEST_ENV", "from-env")
	cases := []struct {
		name    string
		path    string
		want    string
		wantErr bool
	}{
		{"file, trimmed", write("ok", "  s3cret\n"), "s3cret", false},
		{"no file: the environment", "", "from-env", false},
		{"empty file", write("empty", " \n"), "", true},
		{"missing file", filepath.Join(dir, "nope"), "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(tc.path, "SECRET_TEST_ENV")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("Read = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
