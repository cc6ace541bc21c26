// Package monitoring renders the monitoring mixin (mixin/, RenderMixin) and
// holds the tests of the shipped alert rules, Alertmanager routing and
// dashboards. It is a module of its own (monitoring/go.mod), so that the
// libraries the tests need stay out of the exporter's dependencies.
package monitoring
