package redisstore

import (
	"bufio"
	"strings"
)

// ParseInfo reads the text of an INFO reply into field → value. Section
// headers, blank lines and lines without a colon are ignored, so a reply
// from any Redis version (or something Redis-like) parses.
func ParseInfo(text string) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		fields[k] = v
	}
	return fields
}
