package collector

import (
	"bytes"
	"hash/crc32"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// writeTenants renders the per-tenant families into out in parallel chunks.
// With prev, the text of the last rendering, it copies the chunks whose
// tenants a change set (dirty) says did not change.
func writeTenants(out *stream, tenants billing.Statuses, prev *tenantText, dirty func(lo, hi int) bool) *tenantText {
	window := 2 * runtime.GOMAXPROCS(0)
	chunks := (tenants.Len() + chunkTenants - 1) / chunkTenants
	next := &tenantText{gzip: out.gzip, families: make([][]chunkText, len(tenantFamilies))}
	if prev != nil && (prev.gzip != out.gzip || len(prev.families[0]) != chunks) {
		prev = nil
	}
	for fi, f := range tenantFamilies {
		out.writeText(appendHeader(nil, f))
		results := make([]chan chunkText, chunks)
		next.families[fi] = make([]chunkText, chunks)
		started := 0
		start := func() {
			if started == chunks {
				return
			}
			i := started
			started++
			results[i] = make(chan chunkText, 1)
			lo, hi := i*chunkTenants, min((i+1)*chunkTenants, tenants.Len())
			if prev != nil && !dirty(lo, hi) {
				results[i] <- prev.families[fi][i]
				return
			}
			go func() { results[i] <- render(f, tenants, lo, hi, out.gzip) }()
		}
		for range window {
			start()
		}
		for i := range chunks {
			c := <-results[i]
			start()
			next.families[fi][i] = c
			out.writeChunk(c.text, c.deflated, c.crc, c.size)
		}
	}
	return next
}

// tenantText is writeTenants' text per family and chunk, in one encoding;
// never modified.
type tenantText struct {
	gzip     bool
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
