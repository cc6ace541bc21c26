// Package secret reads secrets from a file or the environment, never a flag.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// Read returns the trimmed contents of the file at path, else the variable
// env. An empty file is an error, as running without the secret would look
// like working.
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
