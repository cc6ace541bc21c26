package collector

import (
	"bytes"
	"hash/crc32"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// writeTenants renders the per-tenant families into out in parallel chunks.
// With prev, the text of the last rendering, it copies the chunks in whose
// id range no tenant changed, came or went (changed, sorted).
func writeTenants(out *stream, tenants billing.Statuses, prev *tenantText, changed []string) *tenantText {
	window := 2 * runtime.GOMAXPROCS(0)
	if prev != nil && prev.gzip != out.gzip {
		prev = nil
	}
	plan := planChunks(tenants, prev, changed)
	next := &tenantText{gzip: out.gzip, starts: make([]string, len(plan)), families: make([][]chunkText, len(tenantFamilies))}
	for i, c := range plan {
		next.starts[i] = c.start
	}
	for fi, f := range tenantFamilies {
		out.writeText(appendHeader(nil, f))
		results := make([]chan chunkText, len(plan))
		next.families[fi] = make([]chunkText, len(plan))
		started := 0
		start := func() {
			if started == len(plan) {
				return
			}
			i := started
			started++
			results[i] = make(chan chunkText, 1)
			if c := plan[i]; c.reuse >= 0 {
				results[i] <- prev.families[fi][c.reuse]
				return
			}
			go func() { results[i] <- render(f, tenants, plan[i].lo, plan[i].hi, out.gzip) }()
		}
		for range window {
			start()
		}
		for i := range plan {
			c := <-results[i]
			start()
			next.families[fi][i] = c
			out.writeChunk(c.text, c.deflated, c.crc, c.size)
		}
	}
	return next
}

// chunkPlan is a chunk of a rendering: tenants lo to hi, from the id start
// on, and the chunk of the last rendering it copies, -1 for none.
type chunkPlan struct {
	lo, hi int
	start  string
	reuse  int
}

// planChunks cuts tenants into chunks: prev's id ranges, a range with a
// change rendered again and cut anew past twice chunkTenants; without
// prev, chunkTenants each.
func planChunks(tenants billing.Statuses, prev *tenantText, changed []string) []chunkPlan {
	var plan []chunkPlan
	cut := func(lo, hi int) {
		for ; lo < hi; lo += chunkTenants {
			plan = append(plan, chunkPlan{lo: lo, hi: min(lo+chunkTenants, hi), start: tenants.At(lo).ID, reuse: -1})
		}
	}
	if prev == nil {
		cut(0, tenants.Len())
		return plan
	}
	for i, start := range prev.starts {
		// The first range starts before every id, the last ends after.
		from, end, last := start, "", i == len(prev.starts)-1
		if i == 0 {
			from = ""
		}
		lo, hi := tenants.Search(from), tenants.Len()
		if !last {
			end = prev.starts[i+1]
			hi = tenants.Search(end)
		}
		k, _ := slices.BinarySearch(changed, from)
		dirty := k < len(changed) && (last || changed[k] < end)
		switch {
		case lo == hi:
		case !dirty:
			plan = append(plan, chunkPlan{lo: lo, hi: hi, start: start, reuse: i})
		case hi-lo > 2*chunkTenants:
			cut(lo, hi)
		default:
			plan = append(plan, chunkPlan{lo: lo, hi: hi, start: start, reuse: -1})
		}
	}
	return plan
}

// tenantText is writeTenants' text per family and chunk, in one encoding,
// with the first id of each chunk's range; never modified.
type tenantText struct {
	gzip     bool
	starts   []string
	families [][]chunkText
}

// chunkText is a chunk's text, or with gzip its deflated text and the
// checksum and length of the text.
type chunkText struct {
	text, deflated []byte
	crc, size      uint32
}

// render renders tenants lo to hi; with gzip only the deflated text is kept.
func render(f *family, tenants billing.Statuses, lo, hi int, gzip bool) chunkText {
	buf := renderBuffers.Get().(*[]byte)
	defer renderBuffers.Put(buf)
	b := (*buf)[:0]
	emit := func(value float64, lv *labelValues) { b = appendSample(b, f, value, lv) }
	var lv labelValues
	for _, t := range tenants.Range(lo, hi) {
		lv[0] = t.ID
		f.tenant(t, &lv, emit)
	}
	*buf = b
	if !gzip {
		return chunkText{text: bytes.Clone(b)}
	}
	return chunkText{deflated: deflateChunk(nil, b), crc: crc32.ChecksumIEEE(b), size: uint32(len(b))}
}

const chunkTenants = 512

var renderBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

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
