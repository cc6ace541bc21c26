package pages

import (
	"math"
	"strconv"
	"strings"
)

// storageType is the metric type shown in bytes.
const storageType = "storage"

// count writes n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesIEC writes n bytes in binary units (KiB, MiB, …), one decimal at most.
func bytesIEC(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n), 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return count(n) + " B"
	}
	return decimal(v, 1) + " " + units[i]
}

// amount writes a figure of metricType in its unit.
func amount(metricType string, n int64) string {
	if metricType == storageType {
		return bytesIEC(n)
	}
	return count(n)
}

// decimal writes v with at most digits decimals, no trailing zeros.
func decimal(v float64, digits int) string {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// percent writes a percentage with one decimal at most.
func percent(v float64) string { return decimal(v, 1) + "%" }
