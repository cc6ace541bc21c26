// Package secret reads secrets.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// Read returns the file at path, trimmed and non-empty, else $env.
func Read(path, env string) (string, error) {
	if path == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}
