// Package examples holds the tests of the deployment examples in this
// folder: the Prometheus configuration, the docker-compose stack with its
// Grafana provisioning, and the Kubernetes manifests. It has no code of its
// own.
package examples
