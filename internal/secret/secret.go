// Package secret reads the exporter's secrets (the Redis password, the
// PostgreSQL DSN) from a file or the environment, never from a flag.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// Read reads a secret from the file at path, else from the environment
// variable env. The value is trimmed of surrounding white space (files
// usually end in a newline) and never logged. A file that is given but
// empty is an error: silently running without the secret (no PostgreSQL, no
// Redis password) would look like working.
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
