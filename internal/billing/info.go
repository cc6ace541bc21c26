package billing

import (
	"context"
	"strconv"
)

// InfoReader reads Redis INFO for the health gauges.
type InfoReader interface {
	Info(ctx context.Context) Info
}

// Info is Redis INFO as one read saw it.
type Info struct {
	// Fields holds the memory and clients sections, summed over a
	// cluster's masters; nil when Err is set.
	Fields map[string]string
	Err    error
	Nodes  []NodeInfo // each master's, for a cluster
}

// NodeInfo is the INFO of one master node of a cluster.
type NodeInfo struct {
	Node   string // host:port, as the cluster announces it
	Fields map[string]string
	Err    error
}

// InfoInt returns an integer INFO field, and whether it is one.
func InfoInt(fields map[string]string, name string) (int64, bool) {
	v, ok := fields[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
