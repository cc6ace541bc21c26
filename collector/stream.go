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
	if !s.gzip {
		s.parts = append(s.parts, text)
		return
	}
	s.writeChunk(nil, deflateChunk(nil, text), crc32.ChecksumIEEE(text), uint32(len(text)))
}

// writeChunk appends text, or with gzip a deflated text of that checksum
// and length.
func (s *stream) writeChunk(text, deflated []byte, crc, size uint32) {
	if !s.gzip {
		s.parts = append(s.parts, text)
		return
	}
	s.crc = crc32Combine(s.crc, crc, int64(size))
	s.size += size
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

// crc32Combine returns the CRC-32 (IEEE) of a followed by b from theirs and
// b's length, as zlib's crc32_combine: hash/crc32 has none, and the text a
// reused chunk's checksum would be computed from is not kept.
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	return multModP(x2nModP(lenB, 3), crcA) ^ crcB
}

// multModP multiplies two polynomials modulo the reflected IEEE polynomial.
func multModP(a, b uint32) uint32 {
	p := uint32(0)
	for m := uint32(1) << 31; ; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32.IEEE
		} else {
			b >>= 1
		}
	}
}

// x2nModP returns x^(n·2^k) modulo the polynomial.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()
