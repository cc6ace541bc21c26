// The files rendered from the mixin, by path from the repository root:
// `make mixin` writes them (monitoring/cmd/mixin), and the monitoring tests
// check that the committed ones are what this produces. config overrides
// _config, e.g. {exporterSelector: 'job="billing"'}; nested objects merge
// field by field ({'for': {BillingRedisDown: '2m'}} changes that one).
//
// Each file is {format: 'yaml' | 'json', header: comment lines, value};
// yaml values are written with their keys in a fixed order.
function(config={})
  local mixin = (import 'mixin.libsonnet') + { _config:: std.mergePatch(super._config, config) };
  local groups(names) = [g for g in mixin.prometheusAlerts.groups if std.member(names, g.name)];
  local generated = 'Generated from mixin/ by `make mixin`: edit the mixin, not this file.';
  {
    'alerts/billing.rules.yml': {
      format: 'yaml',
      header: [
        'Alerting rules on the metrics of billing_exporter itself.',
        generated,
        '',
        'Load with Prometheus `rule_files:` as they are. Every rule selects the',
        'exporter with %s (the mixin\'s exporterSelector: set it to' % mixin._config.exporterSelector,
        'your scrape job) and points its dashboard_url at %s.' % mixin._config.grafanaURL,
        'Alerts read last_over_time(...[%s]), so that a failed or cut scrape does' % mixin._config.continuityWindow,
        'not resolve or restart them (docs/runbooks.md, "Blips"); tenant alerts hold',
        'their last values for up to %s while Redis is not read (ibid., "Outages").' % mixin._config.outageWindow,
        '',
        'Rules that need the SaaS backend\'s own counters are in backend.rules.yml.',
        'Every alert has a section in docs/runbooks.md (anchor = lower-case alert',
        'name) and unit tests in alerts/tests/ (promtool test rules).',
      ],
      value: { groups: groups(['billing-tenants', 'billing-sources']) },
    },
    'alerts/backend.rules.yml': {
      format: 'yaml',
      header: [
        'Alerting rules that need the SaaS BACKEND\'s instrumentation.',
        generated,
        '',
        'billing_exporter does NOT export the metrics these rules use. They are the',
        'counters the backend itself must export with prom-client, as in the seed',
        'specification (backend/src/config/prometheus.ts, UsageService and',
        'checkPlanLimits):',
        '',
        '  billing_limit_exceeded_total{tenant_id, limit_type}',
        '  billing_usage_increment_errors_total{tenant_id, metric_type, error_type}',
        '',
        'and a scrape job for the backend\'s /metrics. Without that instrumentation',
        'these rules are valid but never fire. Load this file only where the backend',
        'is instrumented and scraped.',
        '',
        'The seed\'s backend also defines billing_usage_percentage; when the exporter',
        'is deployed, drop that gauge from the backend (or from its scrape job with',
        'metric_relabel_configs), or the exporter\'s usage alerts fire twice per tenant.',
      ],
      value: { groups: groups(['billing-backend']) },
    },
    'examples/kubernetes/prometheusrule.yaml': {
      format: 'yaml',
      header: [
        'Every alert of alerts/ as a Prometheus Operator PrometheusRule.',
        generated,
        'Give it the labels your Prometheus resource\'s ruleSelector selects.',
      ],
      value: {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PrometheusRule',
        metadata: {
          name: 'billing-exporter',
          labels: { 'app.kubernetes.io/name': 'billing-exporter', 'app.kubernetes.io/part-of': 'billing-monitoring' },
        },
        spec: mixin.prometheusAlerts,
      },
    },
    'examples/kubernetes/grafana-dashboards.yaml': {
      format: 'yaml',
      header: [
        'The dashboards of dashboards/ as a ConfigMap for the Grafana sidecar',
        '(kiwigrid k8s-sidecar, as in the grafana and kube-prometheus-stack',
        'charts), which loads every ConfigMap labelled grafana_dashboard: "1".',
        generated,
      ],
      value: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'billing-exporter-dashboards',
          labels: { grafana_dashboard: '1', 'app.kubernetes.io/name': 'billing-exporter', 'app.kubernetes.io/part-of': 'billing-monitoring' },
        },
        data: { [name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n' for name in std.objectFields(mixin.grafanaDashboards) },
      },
    },
  } + {
    ['dashboards/' + name]: { format: 'json', header: [], value: mixin.grafanaDashboards[name] }
    for name in std.objectFields(mixin.grafanaDashboards)
  }
