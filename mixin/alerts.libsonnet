// Alerting rules. Group names decide the rendered file: billing-tenants and
// billing-sources go to alerts/billing.rules.yml, billing-backend (rules on
// the SaaS backend's own counters) to alerts/backend.rules.yml.

{
  local cfg = $._config,

  // selector('billing_usage', 'metric_type="messages"') =
  // billing_usage{job="billing_exporter",metric_type="messages"}.
  local selectorOf(base, metric, extra) =
    local ms = std.filter(function(m) m != '', [base, extra]);
    if std.length(ms) == 0 then metric else metric + '{' + std.join(',', ms) + '}',
  local exporter(metric, extra='') = selectorOf(cfg.exporterSelector, metric, extra),
  local backend(metric, extra='') = selectorOf(cfg.backendSelector, metric, extra),
  // The last sample within a window: a gap of failed or cut scrapes does
  // not make the series (and the alert on it) go away.
  local lastIn(window, metric, extra='') = 'last_over_time(' + exporter(metric, extra) + '[' + window + '])',
  local last(metric, extra='') = lastIn(cfg.continuityWindow, metric, extra),
  local indent(s) = std.join('\n', ['  ' + l for l in std.split(std.rstripChars(s, '\n'), '\n')]) + '\n',
  // A tenant alert's condition, cond(window) on the last samples within
  // window: over the continuity window while the exporter reports Redis
  // up, so that a genuine drop or a series gone for good resolves it; over
  // the outage window while it does not (Redis down: 0; the exporter down
  // or unreachable: absent), so that an outage up to that long neither
  // resolves it nor restarts its `for`. `unless` binds tighter than `or`,
  // hence the parentheses.
  local held(cond) = |||
    (
    %s)
    or
    (
      (
    %s  )
      unless on(job, instance)
        %s == 1
    )
  ||| % [indent(cond(cfg.continuityWindow)), indent(indent(cond(cfg.outageWindow))), exporter('billing_redis_up')],
  local oneOf(types) = std.join('|', types),
  local num(x) = if std.isString(x) then x else std.toString(x),

  local runbook(alert) = cfg.runbookURL + '#' + std.asciiLower(alert),
  local tenantDashboard = cfg.grafanaURL + '/d/billing-tenant/billing-per-tenant?var-job={{ $labels.job | urlquery }}&var-instance={{ $labels.instance | urlquery }}&var-tenant_id={{ $labels.tenant_id | urlquery }}',
  local backendTenantDashboard = cfg.grafanaURL + '/d/billing-tenant/billing-per-tenant?var-tenant_id={{ $labels.tenant_id | urlquery }}',
  local healthDashboard = cfg.grafanaURL + '/d/billing-redis/billing-redis-health?var-job={{ $labels.job | urlquery }}&var-instance={{ $labels.instance | urlquery }}',
  local jobHealthDashboard = cfg.grafanaURL + '/d/billing-redis/billing-redis-health?var-job={{ $labels.job | urlquery }}',
  local isSeat = 'or ' + std.join(' ', ['(eq $labels.limit_type "' + t + '")' for t in cfg.seatLimitTypes]),

  // summary is one static sentence, the same for every alert of a name (and
  // so a notification group's common summary); description names the
  // tenant, instance or job.
  local alert(name, severity, expr, summary, description, dashboard, extra={}) = {
    alert: name,
    expr: expr,
    'for': cfg['for'][name],
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: runbook(name),
      dashboard_url: dashboard,
    } + extra,
  },
  // The exporter's list of tenants at or over a percentage, for messages
  // that show only some of the tenants of a group.
  local tenantsList(query) = { tenants_url: cfg.exporterURL + '/api/v1/tenants?' + query },
  // The exporter's page of the alert's tenant.
  local tenantPage = { tenant_url: cfg.exporterURL + '/tenants/{{ $labels.tenant_id | urlquery }}' },

  // A Prometheus duration ('1h30m', '5m', '30s') in seconds.
  local seconds(d) =
    local unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
    local step(st, c) =
      if std.member('0123456789', c) then
        if st.u != '' then { n: c, u: '', total: st.total + std.parseInt(st.n) * unit[st.u] } else st { n+: c }
      else st { u+: c };
    local st = std.foldl(step, std.stringChars(d), { n: '', u: '', total: 0 });
    st.total + (if st.n != '' then std.parseInt(st.n) * unit[st.u] else 0),
  assert seconds(cfg.outageWindow) >= seconds(cfg.continuityWindow) :
         'outageWindow (%s) must be at least continuityWindow (%s)' % [cfg.outageWindow, cfg.continuityWindow],

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'billing-tenants',
        rules: [
          // Messages only (the seed's alert), and only below the limit:
          // from there BillingLimitReached takes over.
          alert(
            'BillingUsageNearLimit', 'warning',
            held(function(w) lastIn(w, 'billing_usage_percentage', 'limit_type="messages"') + ' > ' + num(cfg.nearLimitPercent) + ' < ' + num(cfg.limitPercent)),
            'Tenant is near its monthly message limit.',
            'Tenant {{ $labels.tenant_id }} has used {{ printf "%.1f" $value }}% of its message limit for the current billing period (alert above ' + num(cfg.nearLimitPercent) + '%).',
            tenantDashboard,
            tenantsList('limit_type=messages&min_percentage=' + num(cfg.nearLimitPercent)) + tenantPage,
          ),
          // Consumption limits at 100 %, seat limits over 100 %.
          alert(
            'BillingLimitReached', 'warning',
            held(function(w)
              lastIn(w, 'billing_usage_percentage', 'limit_type=~"' + oneOf(cfg.consumptionLimitTypes) + '"') + ' >= ' + num(cfg.limitPercent) + '\nor\n' +
              lastIn(w, 'billing_usage_percentage', 'limit_type=~"' + oneOf(cfg.seatLimitTypes) + '"') + ' > ' + num(cfg.limitPercent)),
            'Tenant has reached or gone over a plan limit.',
            'Tenant {{ $labels.tenant_id }} is at {{ printf "%.1f" $value }}% of its {{ $labels.limit_type }} limit: {{ if ' + isSeat + ' }}it has more {{ $labels.limit_type }} than its plan allows (being at the limit is normal use, over it is not){{ else }}the backend refuses further {{ $labels.limit_type }} until the limit is raised or usage goes down{{ end }}.',
            tenantDashboard,
            tenantsList('limit_type={{ $labels.limit_type | urlquery }}&min_percentage=' + num(cfg.limitPercent)) + tenantPage,
          ),
          // Messages are the only monthly counter that can be projected:
          // usage so far × period length / time elapsed. Not in the
          // period's first day, nor for a tenant already at its limit.
          alert(
            'BillingUsagePredictedToExceed', 'info',
            held(function(w) |||
              (
                  %(usage)s
                * ignoring(tenant_id, metric_type) group_left()
                  (
                      (%(end)s - %(start)s)
                    / (time() - %(start)s)
                  )
              )
              > ignoring(metric_type, limit_type)
                %(limit)s
              and ignoring(tenant_id, metric_type)
                (time() - %(start)s > %(minAge)s)
              unless ignoring(metric_type, limit_type)
                %(pct)s >= %(limitPercent)s
            ||| % {
              usage: lastIn(w, 'billing_usage', 'metric_type="messages"'),
              start: lastIn(w, 'billing_period_start_timestamp_seconds'),
              end: lastIn(w, 'billing_period_end_timestamp_seconds'),
              limit: lastIn(w, 'billing_usage_limit', 'limit_type="messages"'),
              pct: lastIn(w, 'billing_usage_percentage', 'limit_type="messages"'),
              minAge: num(cfg.predictionMinAgeSeconds),
              limitPercent: num(cfg.limitPercent),
            }),
            'Tenant is on course to exceed its monthly message limit.',
            'At its pace so far this billing period, tenant {{ $labels.tenant_id }} will have sent about {{ $value | humanize }} messages by the end of the period, more than its plan allows.',
            tenantDashboard,
            tenantPage,
          ),
          alert(
            'BillingTenantWithoutPlan', 'info',
            held(function(w) lastIn(w, 'billing_tenant_using_defaults') + ' == 1'),
            'Tenant has no active plan.',
            'Tenant {{ $labels.tenant_id }} has had no active plan for ' + cfg['for'].BillingTenantWithoutPlan + ' or more and is held to the default limits.',
            tenantDashboard,
            tenantPage,
          ),
        ],
      },
      {
        name: 'billing-sources',
        rules: [
          alert(
            'BillingRedisDown', 'critical',
            last('billing_redis_up') + ' == 0',
            'Billing Redis is unreachable from the exporter.',
            "billing_exporter {{ $labels.instance }} has failed to read the usage state from Redis for %s or more. No per-tenant usage is exported (usage alerts and dashboards are blind), and the backend's usage tracking, which writes to the same Redis, is probably failing too." % cfg['for'].BillingRedisDown,
            healthDashboard,
          ),
          // A quantile needs the per-bucket rates, keeping le. Sustained
          // latency only: an operation needs redisLatencyMinOperations
          // calls in the window, so that one slow call (a reconnect after
          // a stall) is never the p95, and `connect` (dials, which a Redis
          // down or restarting makes slow: BillingRedisDown's business)
          // is left out.
          alert(
            'BillingRedisHighLatency', 'warning',
            |||
              histogram_quantile(0.95,
                sum by (job, operation, le) (rate(%(bucket)s[%(window)s]))
              ) > %(threshold)s
              and on(job, operation)
                sum by (job, operation) (increase(%(count)s[%(window)s])) >= %(minOps)s
            ||| % {
              bucket: exporter('billing_redis_operation_duration_seconds_bucket', 'operation!="connect"'),
              count: exporter('billing_redis_operation_duration_seconds_bucket', 'operation!="connect",le="+Inf"'),
              window: cfg.rateWindow,
              threshold: num(cfg.redisLatencySeconds),
              minOps: num(cfg.redisLatencyMinOperations),
            },
            'Billing Redis latency is high.',
            'The p95 latency of Redis {{ $labels.operation }} calls made by {{ $labels.job }} is {{ $value | humanizeDuration }} over the last ' + cfg.rateWindow + ' (threshold ' + num(cfg.redisLatencySeconds) + 's).',
            jobHealthDashboard,
          ),
          // billing_redis_up says the replica answered, not that what it
          // holds is current: a replica cut from its master serves the
          // usage as of the cut. The series exists only on a replica (a
          // primary, a cluster or a Redis without INFO has none), so absent
          // is quiet. last(): a scrape cut by its deadline can lose its
          // INFO and the series with it, which must not resolve the alert.
          alert(
            'BillingRedisReplicaLinkDown', 'warning',
            last('billing_redis_master_link_up') + ' == 0',
            'Billing Redis replica has lost its master.',
            "The Redis that billing_exporter {{ $labels.instance }} reads is a replica whose link to its master has been down for %s or more. The exporter still reads it (billing_redis_up is 1), but the usage it exports is frozen at the moment the link broke: usage alerts, limits and dashboards lag the backend, which writes to the master." % cfg['for'].BillingRedisReplicaLinkDown,
            healthDashboard,
          ),
          // track mode's self-check: any key the mirror held differently
          // from a full read is a missed invalidation, i.e. a bug. The
          // gauge holds until the next self-check; last() keeps a failed
          // scrape from resolving it meanwhile.
          alert(
            'BillingRedisMirrorDiverged', 'warning',
            last('billing_redis_mirror_divergent_keys') + ' > 0',
            'Redis usage mirror differed from Redis.',
            "The last self-check of billing_exporter {{ $labels.instance }}'s usage mirror (--redis.read-mode=track) found {{ printf \"%.0f\" $value }} usage keys that differed from a full read of Redis: the usage exported for those tenants had missed changes. The self-check replaced the mirror with the full read; the alert holds until the next self-check finds no difference. The exporter logged one example key at warn: report it as a bug.",
            healthDashboard,
          ),
          // --redis.read-mode=track asked for, but Redis refused key
          // tracking (or cannot offer it): every scrape is a full read, as
          // in scan mode. Correct numbers, a heavier load on Redis. The
          // `for` lets a restart or a transient refusal settle first.
          alert(
            'BillingRedisTrackingUnavailable', 'warning',
            last('billing_redis_tracking_unavailable') + ' == 1',
            'Redis key tracking is unavailable: every scrape reads Redis in full.',
            'billing_exporter {{ $labels.instance }} was started with --redis.read-mode=track, but Redis has refused key tracking for ' + cfg['for'].BillingRedisTrackingUnavailable + ' or more, so every scrape reads the whole usage state (as --redis.read-mode=scan does). The numbers stay right; the load on Redis and the scrape duration grow with the number of tenants. The exporter logged the reason at start.',
            healthDashboard,
          ),
          alert(
            'BillingPostgresDown', 'warning',
            last('billing_postgres_up') + ' == 0',
            'Plans database is unreachable from the exporter.',
            'billing_exporter {{ $labels.instance }} has failed to read the plans from PostgreSQL for ' + cfg['for'].BillingPostgresDown + ' or more. It keeps serving the last plans it read (see billing_plans_age_seconds); plan changes made since then are not reflected in limits and percentages.',
            healthDashboard,
          ),
          alert(
            'BillingPlansStale', 'warning',
            last('billing_plans_age_seconds') + ' > ' + num(cfg.plansStaleSeconds),
            'Plans data used by the exporter is stale.',
            'The plans and limits billing_exporter {{ $labels.instance }} is using were read {{ $value | humanizeDuration }} ago (threshold ' + num(cfg.plansStaleSeconds) + 's): limits, percentages and limit alerts may be wrong for tenants whose plan changed since.',
            healthDashboard,
          ),
          // The exporter runs beside Redis: when that host or pod goes,
          // the exporter goes too and BillingRedisDown cannot fire, so this
          // is as critical. absent() covers a target discovery lost.
          alert(
            'BillingExporterDown', 'critical',
            exporter('up') + ' == 0 or absent(' + exporter('up') + ')',
            'Billing exporter is down.',
            '{{ if $labels.instance }}Prometheus has failed to scrape billing_exporter at {{ $labels.instance }}{{ else }}Prometheus has no billing_exporter target to scrape{{ end }} for ' + cfg['for'].BillingExporterDown + ' or more. Billing usage, limits and the Redis behind them are unmonitored meanwhile.',
            jobHealthDashboard,
          ),
          // A failed reload keeps the previous configuration and the gauge
          // at 0 until a reload succeeds: it never clears by itself, so the
          // `for` only lets a follow-up reload (one per changed file, files
          // that arrive minutes apart) land first. last(): a scrape gap
          // must not resolve it. The annotation says since when the
          // configuration in force dates.
          alert(
            'BillingExporterConfigReloadFailed', 'warning',
            last('billing_exporter_config_last_reload_successful') + ' == 0',
            'Billing exporter failed to reload its configuration.',
            'The last configuration reload of billing_exporter {{ $labels.instance }} (SIGHUP or POST /-/reload) failed ' + cfg['for'].BillingExporterConfigReloadFailed + ' or more ago, and it kept the previous configuration{{ with query (printf "billing_exporter_config_last_reload_success_timestamp_seconds{job=%q,instance=%q}" $labels.job $labels.instance) }}, loaded {{ . | first | value | humanizeTimestamp }}{{ end }}: changes made since then to --config.file, --plans.file or the Redis TLS files are not in force. The exporter keeps serving with the old configuration; its log line "reload failed" names the file and line.',
            healthDashboard,
          ),
        ],
      },
      {
        name: 'billing-backend',
        rules: [
          // Summed over the backend's replicas: a tenant blocked 0.06/s on
          // each of three (0.18/s) is not missed.
          alert(
            'BillingLimitExceededFrequent', 'critical',
            'sum by (tenant_id, limit_type) (rate(%s[%s])) > %s' % [backend('billing_limit_exceeded_total'), cfg.rateWindow, num(cfg.limitExceededPerSecond)],
            'Tenant is being blocked frequently on a plan limit.',
            "The backend has been refusing {{ printf \"%.2f\" $value }} requests/s from tenant {{ $labels.tenant_id }} for exceeding its {{ $labels.limit_type }} limit (threshold " + num(cfg.limitExceededPerSecond) + '/s, for ' + cfg['for'].BillingLimitExceededFrequent + "): the customer's users are being turned away.",
            backendTenantDashboard,
          ),
          // Summed over tenants: errors spread over many tenants count.
          alert(
            'BillingUsageIncrementErrors', 'warning',
            'sum by (job, error_type) (rate(%s[%s])) > %s' % [backend('billing_usage_increment_errors_total'), cfg.rateWindow, num(cfg.incrementErrorsPerSecond)],
            'Usage increments are failing in the backend.',
            'The backend ({{ $labels.job }}) has been failing {{ printf "%.3f" $value }} usage increments/s with {{ $labels.error_type }} over the last ' + cfg.rateWindow + ' (threshold ' + num(cfg.incrementErrorsPerSecond) + '/s): usage that is not recorded is not billed and not limited.',
            cfg.grafanaURL + '/d/billing-redis/billing-redis-health',
          ),
        ],
      },
    ],
  },
}
