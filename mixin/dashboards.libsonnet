// Grafana dashboards. Their panels are in dashboards/*.json (plain Grafana
// JSON, every query scoped by the $job and $instance variables, backend
// queries by $backend_job); the variables, tags and refresh come from
// _config here.
{
  local cfg = $._config,
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
  local jobVar = queryVar('job', 'Job', 'label_values(billing_exporter_build_info{%s}, job)' % cfg.exporterSelector),
  local instanceVar = queryVar('instance', 'Instance', 'label_values(billing_exporter_build_info{job=~"$job"}, instance)', all='.+'),
  // The SaaS backend's jobs, for the panels on its prom-client counters.
  local backendJobVar = queryVar('backend_job', 'Backend job',
                                 'label_values({__name__=~"billing_limit_exceeded_total|billing_usage_increment_errors_total"}, job)', all='.+'),
  // Every tenant the exporter knows: plan info covers tenants without
  // usage this period, usage covers them while the plans are unknown.
  local tenantVar = queryVar('tenant_id', 'Tenant',
                             'label_values({__name__=~"billing_tenant_plan_info|billing_usage",job=~"$job",instance=~"$instance"}, tenant_id)', sort=3),

  local dashboard(panels, vars) = panels + {
    tags: cfg.dashboardTags + ['billing_exporter'],
    refresh: cfg.dashboardRefresh,
    timezone: cfg.dashboardTimezone,
    templating: { list: [datasourceVar, jobVar, instanceVar] + vars },
  },

  grafanaDashboards+:: {
    'billing-overview.json': dashboard(import 'dashboards/billing-overview.json', [backendJobVar]),
    'billing-tenant.json': dashboard(import 'dashboards/billing-tenant.json', [backendJobVar, tenantVar]),
    'redis-health.json': dashboard(import 'dashboards/redis-health.json', [backendJobVar]),
  },
}
