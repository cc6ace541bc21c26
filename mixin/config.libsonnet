// The mixin's settings. Override any of them in your own jsonnet:
//
//   (import 'billing_exporter/mixin/mixin.libsonnet') + {
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

    // Continuity: the tenant and source alerts read the last sample of
    // each series within this window (last_over_time), so that a failed
    // or cut scrape, or Redis down for less than BillingRedisDown's `for`,
    // neither resolves a firing alert nor restarts a pending one. It must
    // be longer than BillingRedisDown's `for` plus a scrape interval. See
    // docs/runbooks.md, "Blips".
    continuityWindow: '5m',

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
      BillingLimitExceededFrequent: '10m',
      BillingUsageIncrementErrors: '5m',
    },

    // Dashboards.
    dashboardTags: ['billing'],
    dashboardRefresh: '1m',
    dashboardTimezone: 'browser',
  },
}
