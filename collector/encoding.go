package collector

import "strings"

// acceptsGzip reports whether a response may be gzip-coded under the
// request's Accept-Encoding (RFC 9110 §12.5.3): "gzip" (or its alias
// "x-gzip") with a non-zero weight, or "*" with a non-zero weight when gzip
// is not listed. A weight of zero in any spelling ("q=0", "q=0.0",
// "q=0.000") means not acceptable. A member with a malformed weight is
// ignored, as a recipient may. Identity is always available: when it too is
// refused ("identity;q=0") there is nothing better to send, so the response
// is plain rather than a 406 that would fail the scrape.
//
// No maintained parser for this header is reachable from the exporter's
// dependencies (client_golang has one, in an internal package; goautoneg
// parses media types only), hence this one; FuzzAcceptsGzip covers it.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1, -1 // weight in thousandths; -1: not listed
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

// weight parses a member's parameters and returns its qvalue in
// thousandths (1000 when there is none), and false when the weight is
// malformed. RFC 9110: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "."
// 0*3("0") ] ), after "q=" in any case.
func weight(params string) (int, bool) {
	q := 1000
	if strings.Trim(params, " \t") == "" {
		return q, true
	}
	for p := range strings.SplitSeq(params, ";") {
		name, value, found := strings.Cut(strings.Trim(p, " \t"), "=")
		if !found || !strings.EqualFold(name, "q") {
			continue // not a weight: Accept-Encoding has no other parameter
		}
		whole, frac, _ := strings.Cut(value, ".")
		if (whole != "0" && whole != "1") || len(frac) > 3 {
			return 0, false
		}
		n := 0
		for i := range 3 {
			d := 0
			if i < len(frac) {
				if frac[i] < '0' || frac[i] > '9' {
					return 0, false
				}
				d = int(frac[i] - '0')
			}
			n = n*10 + d
		}
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
