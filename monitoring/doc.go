// Package monitoring holds the tests of the shipped alert rules, Alertmanager routing and dashboards.
package monitoring
