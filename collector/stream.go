package collector

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync"

	// The same API as compress/flate, at less CPU.
	"github.com/klauspost/compress/flate"
)

// stream is a body held as parts, never copied. For gzip, as in pigz, each
// chunk is deflated on its own with a sync flush, so the chunks concatenate
// into one deflate stream.
type stream struct {
	parts [][]byte
	gzip  bool
	crc   uint32
	size  uint32 // ISIZE: the length modulo 2^32
}

// gzipHeader is a minimal RFC 1952 header; finalBlock an empty final block.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

var finalBlock = []byte{0x03, 0x00}

func (s *stream) writeText(text []byte) {
	var deflated []byte
	if s.gzip {
		deflated = deflateChunk(nil, text)
	}
	s.writeChunk(text, deflated)
}

func (s *stream) writeChunk(text, deflated []byte) {
	if !s.gzip {
		s.parts = append(s.parts, text)
		return
	}
	s.crc = crc32.Update(s.crc, crc32.IEEETable, text)
	s.size += uint32(len(text))
	s.parts = append(s.parts, deflated)
}

func (s *stream) close() {
	if s.gzip {
		var trailer [8]byte
		binary.LittleEndian.PutUint32(trailer[:4], s.crc)
		binary.LittleEndian.PutUint32(trailer[4:], s.size)
		s.parts = append(s.parts, finalBlock, trailer[:])
	}
}

var flaters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	return fw
}}

func deflateChunk(dst, text []byte) []byte {
	buf := bytes.NewBuffer(dst)
	fw := flaters.Get().(*flate.Writer)
	fw.Reset(buf)
	_, _ = fw.Write(text) // cannot fail
	_ = fw.Flush()
	flaters.Put(fw)
	return buf.Bytes()
}
