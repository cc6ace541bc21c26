package collector

import (
	"regexp"
	"strconv"
	"strings"
)

// acceptsGzip reports whether Accept-Encoding (RFC 9110) accepts gzip.
// Identity is served even when refused: a 406 would fail the scrape.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1.0, -1.0 // -1: not listed
	for member := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(member, ";")
		coding = strings.ToLower(strings.Trim(coding, " \t"))
		q, ok := weight(params)
		if !ok {
			continue
		}
		switch coding {
		case "gzip", "x-gzip":
			gzipQ = max(gzipQ, q)
		case "*":
			starQ = max(starQ, q)
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// qvalueRE is RFC 9110's qvalue.
var qvalueRE = regexp.MustCompile(`^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$`)

// weight returns a member's qvalue, false when malformed.
func weight(params string) (float64, bool) {
	q := 1.0
	for p := range strings.SplitSeq(params, ";") {
		name, value, found := strings.Cut(strings.Trim(p, " \t"), "=")
		if !found || !strings.EqualFold(name, "q") {
			continue
		}
		if !qvalueRE.MatchString(value) {
			return 0, false
		}
		q, _ = strconv.ParseFloat(value, 64)
	}
	return q, true
}
