package collector

import (
	"strconv"
	"strings"
)

// acceptsGzip reports whether Accept-Encoding (RFC 9110) accepts gzip.
// Identity is served even when refused: a 406 would fail the scrape.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1, -1 // -1: not listed
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

// weight returns a member's qvalue in thousandths, false when malformed.
func weight(params string) (int, bool) {
	q := 1000
	if strings.Trim(params, " \t") == "" {
		return q, true
	}
	for p := range strings.SplitSeq(params, ";") {
		name, value, found := strings.Cut(strings.Trim(p, " \t"), "=")
		if !found || !strings.EqualFold(name, "q") {
			continue
		}
		whole, frac, _ := strings.Cut(value, ".")
		if (whole != "0" && whole != "1") || len(frac) > 3 || strings.Trim(frac, "0123456789") != "" {
			return 0, false
		}
		n, _ := strconv.Atoi((frac + "000")[:3])
		if whole == "1" {
			if n != 0 {
				return 0, false
			}
			n = 1000
		}
		q = n
	}
	return q, true
}
