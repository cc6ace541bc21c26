// billing_exporter's monitoring mixin: alerting rules and Grafana
// dashboards, configured by _config (config.libsonnet). The rendered
// files (alerts/*.yml, dashboards/*.json, examples/kubernetes/) are
// generated from it by `make mixin`.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
