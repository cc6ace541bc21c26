package api

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// List parameters' defaults and bounds.
const (
	DefaultLimitType = "messages"
	DefaultListLimit = 50
	MaxListLimit     = 1000
	// MaxMinPercentage bounds min_percentage: usage may exceed the limit,
	// but not by a factor of ten thousand in any sane deployment.
	MaxMinPercentage = 1e6
)

// parseQuery accepts each allowed parameter at most once and with a
// non-empty value. Anything else (an unknown parameter, a repeated one, an
// empty value, a query that does not decode) is a 400 naming the parameter:
// a typo silently ignored would answer a question the client did not ask.
func parseQuery(raw string, allowed []string) (map[string]string, *problem) {
	out := map[string]string{}
	if raw == "" {
		return out, nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errInvalidParam("query", "is malformed: "+err.Error())
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		vs := values[name]
		switch {
		case name == "":
			// "?=1": there is no name to put in the parameter member.
			return nil, errInvalidParam("query", "has a parameter without a name")
		case !slices.Contains(allowed, name):
			takes := "takes no query parameters"
			if len(allowed) > 0 {
				takes = fmt.Sprintf("takes only %v", allowed)
			}
			p := errInvalidParam(truncate(name, 64), "")
			p.Detail = fmt.Sprintf("unknown query parameter %.64q: this endpoint %s", name, takes)
			return nil, p
		case len(vs) != 1:
			return nil, errInvalidParam(name, fmt.Sprintf("is given %d times; give it at most once", len(vs)))
		case vs[0] == "":
			return nil, errInvalidParam(name, "is empty; leave it out for the default")
		}
		out[name] = vs[0]
	}
	return out, nil
}

// truncate cuts s to at most n bytes, for echoing client input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// decimalRE is a plain non-negative decimal: no sign, exponent, hex, NaN,
// Inf or underscores, which strconv.ParseFloat would otherwise accept.
var decimalRE = regexp.MustCompile(`^[0-9]{1,10}(\.[0-9]{1,10})?$`)

// parsePercentage reads min_percentage: a plain decimal in [0, 1e6].
func parsePercentage(name, s string) (float64, *problem) {
	if !decimalRE.MatchString(s) {
		return 0, errInvalidParam(name, fmt.Sprintf("must be a non-negative decimal number such as 80 or 99.5, not %.32q", s))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v > MaxMinPercentage {
		return 0, errInvalidParam(name, fmt.Sprintf("must be at most %g", float64(MaxMinPercentage)))
	}
	return v, nil
}

var digitsRE = regexp.MustCompile(`^[0-9]{1,10}$`)

// parseLimit reads limit: an integer in [1, MaxListLimit]. Values out of
// range are rejected, not clamped, so that a client never mistakes a
// shorter page for the end of the list.
func parseLimit(name, s string) (int, *problem) {
	if !digitsRE.MatchString(s) {
		return 0, errInvalidParam(name, fmt.Sprintf("must be an integer from 1 to %d, not %.32q", MaxListLimit, s))
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > MaxListLimit {
		return 0, errInvalidParam(name, fmt.Sprintf("must be an integer from 1 to %d", MaxListLimit))
	}
	return v, nil
}

// parseLimitType checks the form of limit_type (a usage hash field name:
// printable UTF-8, at most usage.MaxMetricTypeLen bytes). Whether it is a
// type anything limits is checked against the data.
func parseLimitType(name, s string) (string, *problem) {
	if err := usage.ValidateMetricType(s); err != nil {
		return "", errInvalidParam(name, "is not a metric type name: "+err.Error())
	}
	return s, nil
}
