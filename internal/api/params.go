package api

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// List parameters' defaults and bounds.
const (
	DefaultLimitType = "messages"
	DefaultListLimit = 50
	MaxListLimit     = 1000
	MaxMinPercentage = 1e6
)

// repeatable parameters may be given more than once; parseQuery joins
// their values with commas, the list form they also take.
var repeatable = map[string]bool{"limit_type": true, "band": true}

// maxRepeats bounds a repeatable parameter's values.
const maxRepeats = 32

// parseQuery accepts each allowed parameter once (a repeatable one up to
// maxRepeats times), non-empty, and rejects the rest: a typo ignored would
// answer a question not asked.
func parseQuery(raw string, allowed []string) (map[string]string, *problem) {
	out := map[string]string{}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errInvalidParam("query", "is malformed: "+err.Error())
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := values[name]
		switch {
		case name == "":
			return nil, errInvalidParam("query", "has a parameter without a name")
		case !slices.Contains(allowed, name):
			takes := "takes no query parameters"
			if len(allowed) > 0 {
				takes = fmt.Sprintf("takes only %v", allowed)
			}
			p := errInvalidParam(name[:min(len(name), 64)], "")
			p.Detail = fmt.Sprintf("unknown query parameter %.64q: this endpoint %s", name, takes)
			return nil, p
		case repeatable[name] && len(vs) > maxRepeats:
			return nil, errInvalidParam(name, fmt.Sprintf("is given %d times; give it at most %d times", len(vs), maxRepeats))
		case !repeatable[name] && len(vs) != 1:
			return nil, errInvalidParam(name, fmt.Sprintf("is given %d times; give it at most once", len(vs)))
		case slices.Contains(vs, ""):
			return nil, errInvalidParam(name, "is empty; leave it out for the default")
		}
		out[name] = strings.Join(vs, ",")
	}
	return out, nil
}

// param parses query[name], or gives def without it.
func param[T any](query map[string]string, name string, def T, parse func(name, s string) (T, *problem)) (T, *problem) {
	if s, ok := query[name]; ok {
		return parse(name, s)
	}
	return def, nil
}

// decimalRE rejects the sign, exponent, hex, NaN and Inf ParseFloat takes.
var decimalRE = regexp.MustCompile(`^[0-9]{1,10}(\.[0-9]{1,10})?$`)

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

// parseLimit rejects rather than clamps, as a client would take a shorter
// page for the end of the list.
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

// parseLimitTypes checks the form of a comma list, sorted and without
// repeats; serveTenants checks the types exist.
func parseLimitTypes(name, s string) ([]string, *problem) {
	var out []string
	for lt := range strings.SplitSeq(s, ",") {
		if err := usage.ValidateMetricType(lt); err != nil {
			return nil, errInvalidParam(name, fmt.Sprintf("%.64q is not a metric type name: %v", lt, err))
		}
		out = append(out, lt)
	}
	if len(out) > maxRepeats {
		return nil, errInvalidParam(name, fmt.Sprintf("lists %d types; list at most %d", len(out), maxRepeats))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parseBands(name, s string) ([]billing.Band, *problem) {
	b, err := billing.ParseBands(s)
	if err != nil {
		return nil, errInvalidParam(name, err.Error())
	}
	return b, nil
}
