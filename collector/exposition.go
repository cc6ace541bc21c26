package collector

import (
	"bytes"
	"math"
	"runtime"
	"slices"
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
//
// With keep, it also returns the text it wrote, tenant by tenant: given as
// prev to the next call, the lines of a tenant whose figures are the same
// (billing.TenantStatus.Same, at the same place in tenants) are copied
// from it rather than rendered again. In track mode most tenants are the
// same from one scrape to the next, and rendering them was most of a
// scrape's CPU.
func writeTenants(out *stream, tenants []billing.TenantStatus, prev *tenantText, keep bool) (*tenantText, error) {
	window := 2 * runtime.GOMAXPROCS(0)
	var next *tenantText
	if keep {
		next = &tenantText{tenants: tenants, families: make([][]chunkText, len(tenantFamilies))}
	}
	// same[i]: tenants[i] is prev's i-th; filled by the first family's
	// chunks, each for its tenants, before any other family's start.
	var same []bool
	if prev != nil && len(prev.tenants) == len(tenants) {
		same = make([]bool, len(tenants))
	}
	for fi, f := range tenantFamilies {
		out.writeText(appendHeader(nil, f))
		chunks := (len(tenants) + chunkTenants - 1) / chunkTenants
		results := make([]chan *rendered, chunks)
		if next != nil {
			next.families[fi] = make([]chunkText, chunks)
		}
		started := 0
		start := func() {
			if started == chunks || out.err != nil {
				return
			}
			i := started
			started++
			results[i] = make(chan *rendered, 1)
			lo, hi := i*chunkTenants, min((i+1)*chunkTenants, len(tenants))
			var was *chunkText
			var wasSame []bool
			if same != nil {
				was, wasSame = &prev.families[fi][i], same[lo:hi]
			}
			go func() {
				if fi == 0 && same != nil {
					for k := lo; k < hi; k++ {
						same[k] = tenants[k].Same(&prev.tenants[k])
					}
				}
				results[i] <- render(f, tenants[lo:hi], out.gzip, was, wasSame, next != nil, out.keeps())
			}()
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
			if r.kept != nil {
				text = r.kept
			}
			if r.keptDeflated != nil {
				deflated = r.keptDeflated
			}
			if next != nil {
				next.families[fi][i] = chunkText{text: r.kept, ends: r.keptEnds}
			}
			out.writeChunk(text, deflated)
			r.kept, r.keptEnds, r.keptDeflated = nil, nil, nil
			renderBuffers.Put(r)
		}
	}
	return next, out.err
}

// tenantText is the per-tenant families as writeTenants rendered them for
// tenants: per family, per chunk, the text and where each tenant's lines
// end in it. Never modified.
type tenantText struct {
	tenants  []billing.TenantStatus
	families [][]chunkText
}

type chunkText struct {
	text []byte
	ends []int32 // ends[k]: the end of the chunk's k-th tenant's lines in text
}

// rendered is one chunk of a family: its text and, for gzip, its deflate
// data, and where each tenant's lines end in the text, in buffers recycled
// through renderBuffers; and the copies that outlive the chunk's writing.
type rendered struct {
	text, deflated []byte
	ends           []int32
	// kept and keptEnds are the text and ends owned by a tenantText;
	// keptDeflated, the deflate data owned by a stream that keeps what it
	// is given. nil when not asked for.
	kept, keptDeflated []byte
	keptEnds           []int32
}

// render renders one chunk of a family (and compresses it, for gzip). A
// tenant whose same[k] is true gets its lines from was, the chunk as
// rendered for the last read. keep asks for the text and ends to keep
// (rendered); owned, for deflate data of its own. The copies are made
// here, on the chunk's goroutine, not where the chunks are written one
// after the other.
func render(f *family, part []billing.TenantStatus, gzip bool, was *chunkText, same []bool, keep, owned bool) *rendered {
	r := renderBuffers.Get().(*rendered)
	buf, ends := r.text[:0], r.ends[:0]
	fresh := keep && was != nil
	if fresh {
		// Text to keep, about as long as the last read's: rendered in a
		// buffer of its own rather than copied from the pool's.
		buf = make([]byte, 0, len(was.text)+len(was.text)/16)
	}
	emit := func(value float64, lv *labelValues) {
		buf = appendSample(buf, f, value, lv)
	}
	var lv labelValues
	for k := range part {
		if same != nil && same[k] {
			from := int32(0)
			if k > 0 {
				from = was.ends[k-1]
			}
			buf = append(buf, was.text[from:was.ends[k]]...)
		} else {
			t := &part[k]
			lv[0] = t.ID
			f.tenant(t, &lv, emit)
		}
		ends = append(ends, int32(len(buf)))
	}
	r.ends = ends
	switch {
	case fresh:
		r.kept = buf
	case keep:
		r.text, r.kept = buf, bytes.Clone(buf)
	default:
		r.text = buf
	}
	if keep {
		r.keptEnds = slices.Clone(ends)
	}
	r.deflated = r.deflated[:0]
	if gzip {
		r.deflated = deflateChunk(r.deflated, buf)
		if owned {
			r.keptDeflated = bytes.Clone(r.deflated)
		}
	} else if owned && r.kept == nil {
		r.kept = bytes.Clone(buf)
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
