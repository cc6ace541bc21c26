package billing

import (
	"context"
	"strconv"
)

// InfoReader reads Redis INFO.
type InfoReader interface {
	Info(ctx context.Context) Info
}

// Info is one read of Redis INFO.
type Info struct {
	Fields map[string]string // summed over masters
	Err    error
	Nodes  []NodeInfo
}

// NodeInfo is one cluster master's INFO.
type NodeInfo struct {
	Node   string // host:port
	Fields map[string]string
	Err    error
}

// InfoInt returns an integer INFO field.
func InfoInt(fields map[string]string, name string) (int64, bool) {
	v, ok := fields[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
