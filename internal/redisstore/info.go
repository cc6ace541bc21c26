package redisstore

import "strings"

// ParseInfo reads the text of an INFO reply into field → value. Section
// headers, blank lines and lines without a colon are ignored, and any of
// \r and \n ends a line, so a reply from any Redis version (or something
// Redis-like) parses, however long its lines.
func ParseInfo(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		line = strings.TrimSpace(line)
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
