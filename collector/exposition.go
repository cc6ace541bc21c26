package collector

import (
	"bytes"
	"math"
	"runtime"
	"strconv"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// writeTenants writes the per-tenant families in the Prometheus text format
// (version 0.0.4) to w. At 100k tenants that is about 1.4 million series:
// going through client_golang's Gather would build, sort and encode a
// protobuf object for each (seconds and hundreds of MB); this renders each
// line with appends. Tested against client_golang (the test's referenceCollector) for identical series.
//
// Chunks of a family are rendered in parallel (by now Redis and PostgreSQL
// have been read and the cores are free) and written in order, so that a
// family's samples stay together as the format requires. At most
// 2 × GOMAXPROCS chunks are in flight, which bounds the memory to a few
// small buffers whatever the number of tenants.
func writeTenants(out *stream, tenants []billing.TenantStatus) error {
	window := 2 * runtime.GOMAXPROCS(0)
	for _, f := range tenantFamilies {
		out.writeText(appendHeader(nil, f))
		chunks := (len(tenants) + chunkTenants - 1) / chunkTenants
		results := make([]chan *rendered, chunks)
		started := 0
		start := func() {
			if started == chunks || out.err != nil {
				return
			}
			i := started
			started++
			results[i] = make(chan *rendered, 1)
			part := tenants[i*chunkTenants : min((i+1)*chunkTenants, len(tenants))]
			go func() { results[i] <- render(f, part, out.gzip) }()
		}
		for range window {
			start()
		}
		// started grows inside the loop: every chunk started is drained,
		// also after a write error (when no new one starts).
		for i := 0; i < started; i++ {
			r := <-results[i]
			start()
			text, deflated := r.text, r.deflated
			if out.keeps() {
				// The stream holds on to what it is given: it gets a copy
				// of the exact size, and the rendering buffer (sized for
				// any chunk) goes back to the pool.
				if out.gzip {
					deflated = bytes.Clone(deflated)
				} else {
					text = bytes.Clone(text)
				}
			}
			out.writeChunk(text, deflated)
			renderBuffers.Put(r)
		}
	}
	return out.err
}

// rendered is one chunk of a family: its text and, for gzip, its deflate
// data. Recycled through renderBuffers.
type rendered struct {
	text, deflated []byte
}

// render renders one chunk of a family (and compresses it, for gzip).
func render(f *family, part []billing.TenantStatus, gzip bool) *rendered {
	r := renderBuffers.Get().(*rendered)
	buf := r.text[:0]
	f.samples(part, func(value float64, lv *labelValues) {
		buf = appendSample(buf, f, value, lv)
	})
	r.text = buf
	r.deflated = r.deflated[:0]
	if gzip {
		r.deflated = deflateChunk(r.deflated, r.text)
	}
	return r
}

// chunkTenants is how many tenants one rendering goroutine takes.
const chunkTenants = 2048

// renderBuffers recycles the chunk buffers between chunks and scrapes.
var renderBuffers = sync.Pool{New: func() any { return &rendered{text: make([]byte, 0, 256<<10)} }}

func appendHeader(b []byte, f *family) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	return append(b, " gauge\n"...)
}

func appendSample(b []byte, f *family, value float64, labels *labelValues) []byte {
	b = append(b, f.name...)
	b = append(b, '{')
	for i, name := range f.labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, name...)
		b = append(b, `="`...)
		b = appendEscaped(b, labels[i], true)
		b = append(b, '"')
	}
	b = append(b, "} "...)
	b = appendFloat(b, value)
	return append(b, '\n')
}

// appendEscaped escapes as the text format requires: backslash and newline
// everywhere, and the double quote inside label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !needsEscape(s) {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || c == '"' {
			return true
		}
	}
	return false
}

// appendFloat formats a value as the text format reads it: whole numbers
// (counts, bytes, limits: most values here) as integers, which is cheaper
// than expfmt's %g and reads the same; the rest as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
