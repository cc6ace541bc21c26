// The mixin's settings. Override any of them in your own jsonnet:
//
//   (import 'github.com/billing-exporter/billing_exporter/mixin/mixin.libsonnet') + {
//     _config+:: { exporterSelector: 'job="billing"', grafanaURL: 'https://grafana.mycorp.net' },
//   }
//
// then render with `make mixin` (or any jsonnet tool, see docs/monitoring.md).
// `make mixin MIXIN_CONFIG=my-config.libsonnet` renders with the _config
// overrides that file evaluates to; nested objects such as `for` merge
// field by field, so one entry can be overridden alone.
{
  _config+:: {
    // Selects the exporter's scrape job. Every exporter rule and the
    // dashboards' job variable use it, so it must match the job your
    // scrape configuration (or PodMonitor) gives the exporter.
    exporterSelector: 'job="billing_exporter"',
    // Selects the SaaS backend's scrape job(s), for the rules on its
    // prom-client counters (backend.rules.yml). Empty: any job.
    backendSelector: '',

    // Where the alerts' dashboard_url and runbook_url annotations point.
    grafanaURL: 'https://grafana.example.com',
    runbookURL: 'https://github.com/billing-exporter/billing_exporter/blob/main/docs/runbooks.md',

    // Continuity: every alert on the exporter's series reads the last
    // sample of each series within this window (last_over_time), so that
    // a failed or cut scrape neither resolves a firing alert nor restarts
    // a pending one. A tenant alert also resolves this long after its
    // series went away while Redis is read (a genuine change). It must be
    // longer than BillingRedisDown's `for` plus a scrape interval. See
    // docs/runbooks.md, "Blips".
    continuityWindow: '5m',
    // Outages: while the exporter does not report Redis up (Redis down,
    // the exporter down or unreachable), the tenant alerts hold the last
    // value of their series within this window instead, so that an
    // outage up to this long neither resolves them nor restarts their
    // `for`. At least continuityWindow (the mixin refuses less). See
    // docs/runbooks.md, "Outages".
    outageWindow: '1h',

    // Limit types by meaning. Consumption (monthly counters, or storage
    // filled): reaching the limit is the event, the backend refuses more.
    // Seats (users, WhatsApp sessions in use): at the limit is normal use,
    // only over it is the event.
    consumptionLimitTypes: ['messages', 'storage'],
    seatLimitTypes: ['users', 'whatsappSessions'],

    // Thresholds.
    nearLimitPercent: 80,
    limitPercent: 100,
    predictionMinAgeSeconds: 86400,  // no projection in a period's first day
    redisLatencySeconds: '0.1',  // strings: jsonnet prints 0.1 as 0.10000000000000001
    // BillingRedisHighLatency needs this many calls of an operation in
    // rateWindow: below 20 a single slow call is the p95. Per-scrape
    // operations make 20 in 5m at a 15 s scrape interval.
    redisLatencyMinOperations: 20,
    plansStaleSeconds: 900,
    limitExceededPerSecond: '0.1',
    incrementErrorsPerSecond: '0.01',
    rateWindow: '5m',

    // How long each condition must hold before its alert fires.
    'for'+: {
      BillingUsageNearLimit: '5m',
      BillingLimitReached: '5m',
      BillingUsagePredictedToExceed: '1h',
      BillingTenantWithoutPlan: '30m',
      BillingRedisDown: '1m',
      BillingRedisHighLatency: '5m',
      BillingPostgresDown: '5m',
      BillingPlansStale: '1m',
      BillingExporterDown: '2m',
      BillingExporterConfigReloadFailed: '5m',
      BillingRedisReplicaLinkDown: '5m',
      // The gauge is the verdict of a finished self-check and holds until
      // the next one (--redis.resync-interval): nothing to wait out, and a
      // `for` as long as that interval would never fire.
      BillingRedisMirrorDiverged: '0s',
      BillingRedisTrackingUnavailable: '15m',
      BillingLimitExceededFrequent: '10m',
      BillingUsageIncrementErrors: '5m',
    },

    // Dashboards.
    dashboardTags: ['billing'],
    dashboardRefresh: '1m',
    dashboardTimezone: 'browser',

    // The exporter's external URL, as people reach it (like Prometheus'
    // --web.external-url): the tenant alerts' tenant_url annotation points
    // at its page of the tenant (/tenants/{tenant_id}), which e-mails and
    // Slack messages link, and their tenants_url at its list of tenants at
    // or over a percentage (its side API), which Slack messages link when
    // they list only some tenants. A template on the alert's labels; set
    // it when the exporter is served over TLS or behind another address,
    // e.g. 'https://billing.example.com'.
    exporterURL: 'http://{{ $labels.instance }}',
  },
}
