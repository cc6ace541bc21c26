// Grafana dashboards. Their panels are in dashboards/*.json (plain Grafana
// JSON, every query scoped by the $job and $instance variables, backend
// queries by $backend_job); the variables, tags and refresh come from
// _config here, and so do the matchers of the mixin's selectors other than
// job's (env="prod", cluster="eu1"), which join every query and variable.
{
  local cfg = $._config,

  // The matchers of a selector ('job="a",env=~"b|c"'), split at the commas
  // outside quoted values.
  local matchers(sel) =
    local step(st, c) =
      if st.esc then st { esc: false, cur+: c }
      else if st.q && c == '\\' then st { esc: true, cur+: c }
      else if c == '"' || c == '`' then st { q: !st.q, cur+: c }
      else if !st.q && c == ',' then st { out+: [st.cur], cur: '' }
      else st { cur+: c };
    local st = std.foldl(step, std.stringChars(sel), { q: false, esc: false, cur: '', out: [] });
    [std.stripChars(m, ' ') for m in st.out + [st.cur] if std.stripChars(m, ' ') != ''],
  local labelOf(m) = std.stripChars(std.split(std.split(std.split(m, '=')[0], '!')[0], '~')[0], ' '),
  // The selector's matchers but job's, as ',m1,m2' (the job variable
  // stands for job's), or ''.
  local extra(sel) = std.join('', [',' + m for m in matchers(sel) if labelOf(m) != 'job']),
  local exporterExtra = extra(cfg.exporterSelector),
  local backendExtra = extra(cfg.backendSelector),
  local scope(expr) =
    std.strReplace(std.strReplace(expr, 'job=~"$job"', 'job=~"$job"' + exporterExtra),
                   'job=~"$backend_job"', 'job=~"$backend_job"' + backendExtra),
  local scopePanels(panels) = [
    p + (if std.objectHas(p, 'targets') then { targets: [t + { expr: scope(t.expr) } for t in p.targets] } else {})
    + (if std.objectHas(p, 'panels') then { panels: scopePanels(p.panels) } else {})
    for p in panels
  ],
  local ds = { type: 'prometheus', uid: '${datasource}' },

  local datasourceVar = {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    includeAll: false,
    multi: false,
    options: [],
    refresh: 1,
    regex: '',
    skipUrlSync: false,
  },
  local queryVar(name, label, query, all=null, sort=1) = {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    definition: query,
    query: query,
    current: {},
    hide: 0,
    includeAll: all != null,
    multi: all != null,
    options: [],
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: sort,
  } + (if all != null then { allValue: all } else {}),

  // The exporter's jobs (from the mixin's job selector) and instances.
  local jobVar = queryVar('job', 'Job', 'label_values(billing_exporter_build_info{%s}, job)' % cfg.exporterSelector, all='.+'),
  local instanceVar = queryVar('instance', 'Instance', scope('label_values(billing_exporter_build_info{job=~"$job"}, instance)'), all='.+'),
  // The SaaS backend's jobs, for the panels on its prom-client counters.
  local backendJobVar = queryVar('backend_job', 'Backend job',
                                 'label_values({__name__=~"billing_limit_exceeded_total|billing_usage_increment_errors_total"%s}, job)' %
                                 std.join('', [',' + m for m in matchers(cfg.backendSelector)]), all='.+'),
  // Every tenant the exporter knows: plan info covers tenants without
  // usage this period, usage covers them while the plans are unknown.
  local tenantVar = queryVar('tenant_id', 'Tenant',
                             scope('label_values({__name__=~"billing_tenant_plan_info|billing_usage",job=~"$job",instance=~"$instance"}, tenant_id)'), sort=3),

  // The overview's refused counts follow BillingLimitReached: consumption
  // types at or over the limit, seat types over it; 0 for a type with
  // none (the exact per-type counts give the types).
  local refused = {
    expr: |||
      count by (limit_type) (billing_usage_percentage{job=~"$job",instance=~"$instance",limit_type=~"%(consumption)s"} >= %(limit)s)
      or
      count by (limit_type) (billing_usage_percentage{job=~"$job",instance=~"$instance",limit_type=~"%(seats)s"} > %(limit)s)
      or
      0 * sum by (limit_type) (billing_tenants_over_threshold{job=~"$job",instance=~"$instance",threshold="%(limit)s"})
    ||| % {
      consumption: std.join('|', cfg.consumptionLimitTypes),
      seats: std.join('|', cfg.seatLimitTypes),
      limit: std.toString(cfg.limitPercent),
    },
    description: 'Tenants the backend refuses, as BillingLimitReached counts them: at or over %s%% of a consumption limit (%s), over %s%% of a seat limit (%s; at the limit is normal use).' % [
      cfg.limitPercent, std.join(', ', cfg.consumptionLimitTypes), cfg.limitPercent, std.join(', ', cfg.seatLimitTypes),
    ],
  },
  local withRefused(d) = d {
    panels: [
      if p.id == 3 then p { description: refused.description, targets: [p.targets[0] { expr: refused.expr }] } else p
      for p in super.panels
    ],
  },

  local dashboard(panels, vars) = panels + {
    panels: scopePanels(super.panels),
    tags: cfg.dashboardTags + ['billing_exporter'],
    refresh: cfg.dashboardRefresh,
    timezone: cfg.dashboardTimezone,
    templating: { list: [datasourceVar, jobVar, instanceVar] + vars },
  },

  grafanaDashboards+:: {
    'billing-overview.json': dashboard(withRefused(import 'dashboards/billing-overview.json'), [backendJobVar]),
    'billing-tenant.json': dashboard(import 'dashboards/billing-tenant.json', [backendJobVar, tenantVar]),
    'redis-health.json': dashboard(import 'dashboards/redis-health.json', [backendJobVar]),
  },
}
