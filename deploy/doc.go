// Package deploy tests the Kubernetes deployment artifacts: the Helm chart
// under charts/ and the manifests and kustomize base in examples/kubernetes.
package deploy
