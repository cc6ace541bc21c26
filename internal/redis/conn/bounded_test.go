package conn

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
)

// chunkConn serves a fixed byte stream in reads of at most chunk bytes.
type chunkConn struct {
	net.Conn
	r     io.Reader
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.chunk)]) }

func TestBoundedConnRewritesOnlyOversizedReplies(t *testing.T) {
	stub := func(limit int) string {
		return fmt.Sprintf("-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n", oversizedPrefix, limit, maxPipelineReplies*limit)
	}
	big := "$40\r\n" + strings.Repeat("9", 40) + "\r\n"
	cases := []struct {
		name, in, want string
	}{
		{"small replies pass", "+OK\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n-ERR no\r\n", "+OK\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n-ERR no\r\n"},
		{"nested array passes", "*2\r\n$1\r\n0\r\n*2\r\n$3\r\nabc\r\n$1\r\nd\r\n", "*2\r\n$1\r\n0\r\n*2\r\n$3\r\nabc\r\n$1\r\nd\r\n"},
		{"big bulk replaced", ":1\r\n" + big + ":2\r\n", ":1\r\n" + stub(32) + ":2\r\n"},
		{"big value in a hash replaced whole", "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n" + big + "+OK\r\n", stub(32) + "+OK\r\n"},
		{"many small fields over the bound", "*12\r\n" + strings.Repeat("$1\r\nx\r\n", 12) + ":7\r\n", stub(32) + ":7\r\n"},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, 4096} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tc.name, chunk), func(t *testing.T) {
				c := newBoundedConn(&chunkConn{r: strings.NewReader(tc.in), chunk: chunk}, 32, maxPipelineReplies)
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Errorf("read %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestBoundedConnBoundsAPipeline(t *testing.T) {
	// 10 replies of 10 bytes, then one of 11, with no write between them,
	// at max=10: a command connection passes the first replies that fit
	// the batch bound (8 × 10 bytes) and replaces the rest; the subscribed
	// connection of key tracking (stream-bounded) passes every reply of
	// at most 10 bytes and replaces only the one over it.
	reply := "$4\r\nabcd\r\n" // 10 bytes
	over := "$5\r\nabcde\r\n" // 11 bytes
	in := strings.Repeat(reply, 10) + over
	tests := []struct {
		name             string
		replies          int
		passed, replaced int
	}{
		{"command connection", maxPipelineReplies, maxPipelineReplies, 10 - maxPipelineReplies + 1},
		{"subscribed connection", 0, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newBoundedConn(&chunkConn{r: strings.NewReader(in), chunk: 4096}, 10, tt.replies)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(got), reply); n != tt.passed {
				t.Errorf("%d replies passed, want %d: %q", n, tt.passed, got)
			}
			if n := strings.Count(string(got), oversizedPrefix); n != tt.replaced {
				t.Errorf("%d replies replaced, want %d", n, tt.replaced)
			}
		})
	}
}

// TestBoundedConnRandomStreams checks random replies, read in random
// chunks, against what the bound should make of them.
func TestBoundedConnRandomStreams(t *testing.T) {
	const limit = 48
	rng := rand.New(rand.NewPCG(1, 2))
	var reply func(depth int) string
	reply = func(depth int) string {
		switch k := rng.IntN(6); {
		case k == 0:
			return ":" + fmt.Sprint(rng.IntN(1000)) + "\r\n"
		case k == 1:
			return "$-1\r\n"
		case k == 2 && depth < 3:
			n := rng.IntN(4)
			s := fmt.Sprintf("*%d\r\n", n)
			for range n {
				s += reply(depth + 1)
			}
			return s
		default:
			n := rng.IntN(40)
			return fmt.Sprintf("$%d\r\n%s\r\n", n, strings.Repeat("x", n))
		}
	}
	stub := fmt.Sprintf("-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n", oversizedPrefix, limit, maxPipelineReplies*limit)
	for round := range 300 {
		var in, want strings.Builder
		exchange := 0
		for range rng.IntN(12) {
			r := reply(0)
			in.WriteString(r)
			if len(r) <= limit && exchange+len(r) <= maxPipelineReplies*limit {
				exchange += len(r)
				want.WriteString(r)
			} else {
				want.WriteString(stub)
			}
		}
		c := newBoundedConn(&chunkConn{r: strings.NewReader(in.String()), chunk: 1 + rng.IntN(70)}, limit, maxPipelineReplies)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("round %d: read %q from %q, want %q", round, got, in.String(), want.String())
		}
	}
}
