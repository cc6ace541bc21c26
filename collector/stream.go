package collector

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	// klauspost's flate rather than the standard library's: the same API
	// and format, about half the CPU (BENCHMARKS.md, "Figures behind
	// decisions in the code").
	"github.com/klauspost/compress/flate"
)

// stream is the response body: plain text, or gzip compressed in parallel.
//
// Compressing the whole exposition with one gzip.Writer would cost most of
// a core after the rest of the scrape is done (BENCHMARKS.md). Instead, as
// pigz does, each rendered chunk is deflated on its own (by the goroutine that
// rendered it) and ends with a sync flush, which leaves the output
// byte-aligned; the chunks' deflate data, concatenated in order, is one valid
// deflate stream, which the stream closes with an empty final block and
// wraps in a gzip header and trailer (CRC-32 and size of the whole text). Any
// gzip reader reads it as an ordinary single-member gzip file.
type stream struct {
	w io.Writer // nil: the body is kept in parts
	// parts is the body as written, when w is nil: each write is one part,
	// never copied, so a writer hands its bytes over (keeps says so).
	parts [][]byte
	gzip  bool
	crc   uint32
	size  uint32 // ISIZE: the length modulo 2^32
	err   error
}

// gzipHeader is a minimal RFC 1952 header: deflate, no name, no time, OS
// unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty final deflate block with fixed codes, after a sync
// flush has byte-aligned the stream (what pigz appends too).
var finalBlock = []byte{0x03, 0x00}

func newStream(w io.Writer, gzip bool) *stream {
	s := &stream{w: w, gzip: gzip}
	if gzip {
		s.write(gzipHeader)
	}
	return s
}

func (s *stream) write(b []byte) {
	if s.w == nil {
		s.parts = append(s.parts, b)
		return
	}
	if s.err == nil {
		_, s.err = s.w.Write(b)
	}
}

// keeps reports whether the stream keeps the slices written to it rather
// than copying them: the writer must not reuse them.
func (s *stream) keeps() bool { return s.w == nil }

// writeText writes text that was not compressed by a worker.
func (s *stream) writeText(text []byte) {
	if !s.gzip {
		s.write(text)
		return
	}
	s.writeChunk(text, deflateChunk(nil, text))
}

// writeChunk writes a chunk: text is the uncompressed bytes, deflated their
// sync-flushed deflate data (unused without gzip).
func (s *stream) writeChunk(text, deflated []byte) {
	if !s.gzip {
		s.write(text)
		return
	}
	s.crc = crc32.Update(s.crc, crc32.IEEETable, text)
	s.size += uint32(len(text))
	s.write(deflated)
}

// close ends the gzip member; it returns the first write error.
func (s *stream) close() error {
	if s.gzip {
		s.write(finalBlock)
		var trailer [8]byte
		binary.LittleEndian.PutUint32(trailer[:4], s.crc)
		binary.LittleEndian.PutUint32(trailer[4:], s.size)
		s.write(trailer[:])
	}
	return s.err
}

// flaters recycles deflate compressors (each holds about 1 MB of state).
var flaters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	return fw
}}

// deflateChunk appends the sync-flushed deflate data of text to dst.
func deflateChunk(dst, text []byte) []byte {
	buf := bytes.NewBuffer(dst)
	fw := flaters.Get().(*flate.Writer)
	fw.Reset(buf)
	_, _ = fw.Write(text) // writes to a bytes.Buffer do not fail
	_ = fw.Flush()
	flaters.Put(fw)
	return buf.Bytes()
}
