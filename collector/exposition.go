package collector

import (
	"bytes"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// writeTenants renders the per-tenant families into out in parallel chunks.
// Passed back as prev, the text it returns lets unchanged tenants be copied.
func writeTenants(out *stream, tenants []billing.TenantStatus, prev *tenantText) *tenantText {
	window := 2 * runtime.GOMAXPROCS(0)
	next := &tenantText{tenants: tenants, families: make([][]chunkText, len(tenantFamilies))}
	// same[i]: tenants[i] is prev's i-th, set by the first family's chunks.
	var same []bool
	if prev != nil && len(prev.tenants) == len(tenants) {
		same = make([]bool, len(tenants))
	}
	for fi, f := range tenantFamilies {
		out.writeText(appendHeader(nil, f))
		chunks := (len(tenants) + chunkTenants - 1) / chunkTenants
		results := make([]chan *rendered, chunks)
		next.families[fi] = make([]chunkText, chunks)
		started := 0
		start := func() {
			if started == chunks {
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
				results[i] <- render(f, tenants[lo:hi], out.gzip, was, wasSame)
			}()
		}
		for range window {
			start()
		}
		for i := range chunks {
			r := <-results[i]
			start()
			next.families[fi][i] = chunkText{text: r.kept, ends: r.keptEnds, deflated: r.keptDeflated}
			out.writeChunk(r.kept, r.keptDeflated)
			r.kept, r.keptEnds, r.keptDeflated = nil, nil, nil
			renderBuffers.Put(r)
		}
	}
	return next
}

// tenantText is writeTenants' text per family and chunk; never modified.
type tenantText struct {
	tenants  []billing.TenantStatus
	families [][]chunkText
}

type chunkText struct {
	text     []byte
	ends     []int32 // where each tenant's lines end
	deflated []byte  // once a gzip rendering made it
}

// rendered is one chunk: pooled buffers, and the kept copies that outlive it.
type rendered struct {
	text, deflated     []byte
	ends               []int32
	kept, keptDeflated []byte
	keptEnds           []int32
}

// render renders one chunk, deflated too for gzip. Tenants marked in same
// are copied from the last rendering; a chunk of such tenants only reuses its bytes.
func render(f *family, part []billing.TenantStatus, gzip bool, was *chunkText, same []bool) *rendered {
	r := renderBuffers.Get().(*rendered)
	if was != nil && !slices.Contains(same, false) {
		r.kept, r.keptEnds, r.keptDeflated = was.text, was.ends, was.deflated
		if gzip && r.keptDeflated == nil {
			r.deflated = deflateChunk(r.deflated[:0], was.text)
			r.keptDeflated = bytes.Clone(r.deflated)
		}
		return r
	}
	buf, ends := r.text[:0], r.ends[:0]
	if was != nil {
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
	r.ends, r.keptEnds = ends, slices.Clone(ends)
	if was != nil {
		r.kept = buf
	} else {
		r.text, r.kept = buf, bytes.Clone(buf)
	}
	if gzip {
		r.deflated = deflateChunk(r.deflated[:0], buf)
		r.keptDeflated = bytes.Clone(r.deflated)
	}
	return r
}

const chunkTenants = 2048

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

// appendEscaped escapes s as the text format requires; quote for label values.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
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

// appendFloat writes whole numbers as integers, which is cheaper, and the
// rest as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
