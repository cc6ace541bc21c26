// Command billing_exporter exports Redis usage hashes, joined with plan
// limits, as Prometheus metrics; main wires the packages (ARCHITECTURE.md).
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/billing-exporter/billing_exporter/collector"
	"github.com/billing-exporter/billing_exporter/config"
	"github.com/billing-exporter/billing_exporter/internal/api"
	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/demo"
	"github.com/billing-exporter/billing_exporter/internal/flagvalue"
	"github.com/billing-exporter/billing_exporter/internal/pages"
	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plansource"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/mirror"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/reload"
	"github.com/billing-exporter/billing_exporter/internal/secret"
	"github.com/billing-exporter/billing_exporter/internal/server"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

const exporterName = "billing_exporter"

// gcPercent is the Go collector's target when GOGC is unset: the heap is
// mostly a long-lived state that each scrape changes little.
const gcPercent = 50

// options are the flags.
type options struct {
	telemetryPath, keyPattern, timezone, configFile, redisPassFile, readMode string
	redisAddrs                                                               []string
	redisCluster, tenantSeries, disableAPI, enablePprof, autoMemLimit        bool
	disablePages                                                             bool
	grafanaURL                                                               string
	redisDial, redisRead, redisWrite, timeoutOffset, maxTimeout              time.Duration
	idleTimeout, resync, plansRefresh                                        time.Duration
	scanCount, batchSize, maxRequests, maxTenants, maxTypes, maxConnections  int
	autoMemLimitRatio                                                        float64
	maxReply, maxUnsent                                                      units.Base2Bytes
	redisTLS                                                                 conn.TLSFiles
	plans                                                                    plansource.Flags
	web                                                                      *web.FlagConfig
	log                                                                      *promslog.Config

	// Set by validate; reloads keep them.
	loc     *time.Location
	pattern usage.KeyPattern
	targets []conn.Target
}

func main() {
	app := kingpin.New(exporterName, "Prometheus exporter for per-tenant billing usage kept in Redis, joined with plan limits.")
	o := addFlags(app)
	if _, err := app.Parse(os.Args[1:]); err != nil {
		app.Fatalf("%v", err)
	}
	logger := promslog.New(o.log)
	if err := run(logger, o); err != nil {
		// One line, even for a YAML file's several errors.
		app.Fatalf("%s", strings.Join(strings.Fields(err.Error()), " "))
	}
}

// addFlags declares every flag.
func addFlags(app *kingpin.Application) *options {
	o := &options{log: &promslog.Config{}}
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&o.telemetryPath)
	flagvalue.Int(app, "web.max-requests", "Maximum number of concurrent scrapes; 0 means no limit.", "40", &o.maxRequests)
	app.Flag("web.max-unsent-bytes", "Most bytes of rendered bodies held for clients still being sent one; over it the clients that have waited longest are cut off and counted. 0 means a quarter of the Go memory limit (see --auto-gomemlimit), or 256MiB without one.").Default("0").BytesVar(&o.maxUnsent)
	flagvalue.Int(app, "web.max-connections", "Maximum number of open HTTP connections; over it a new connection replaces the longest idle one, or is closed. 0 means no limit.", "512", &o.maxConnections)
	flagvalue.Duration(app, "web.idle-timeout", "How long an idle keep-alive connection is kept open.", "2m", &o.idleTimeout)
	app.Flag("web.enable-pprof", "Serve the Go runtime's profiles (net/http/pprof) under /debug/pprof/, behind the web config's TLS and basic auth, and link them from the landing page.").BoolVar(&o.enablePprof)
	app.Flag("web.disable-api", "Disable the read-only JSON API under /api/ (see /api/v1/openapi.yaml).").BoolVar(&o.disableAPI)
	app.Flag("web.disable-pages", "Disable the HTML pages /tenants and /tenants/{tenant_id} (and their CSV).").BoolVar(&o.disablePages)
	app.Flag("web.grafana-url", "Grafana base URL (the mixin's grafanaURL): each tenant's page links its per-tenant dashboard there; empty: no link.").StringVar(&o.grafanaURL)
	app.Flag("redis.addr", "Redis address: host:port, or a redis:// or rediss:// URL (user, db). Repeatable with --redis.cluster: the cluster's seed nodes.").Default("localhost:6379").StringsVar(&o.redisAddrs)
	app.Flag("redis.cluster", "Treat --redis.addr (repeatable) as Redis Cluster seed nodes: read every master of the cluster.").BoolVar(&o.redisCluster)
	app.Flag("redis.password-file", "File holding the Redis password (else env REDIS_PASSWORD).").StringVar(&o.redisPassFile)
	app.Flag("redis.tls-ca-file", "PEM CA bundle for rediss:// (else the system roots).").StringVar(&o.redisTLS.CAFile)
	app.Flag("redis.tls-cert-file", "Client certificate for rediss://, when Redis requires one.").StringVar(&o.redisTLS.CertFile)
	app.Flag("redis.tls-key-file", "Key of the client certificate.").StringVar(&o.redisTLS.KeyFile)
	app.Flag("redis.tls-server-name", "Host name to verify in Redis' certificate (default: the address's host).").StringVar(&o.redisTLS.ServerName)
	app.Flag("redis.tls-insecure-skip-verify", "Do not verify Redis' certificate (testing only).").BoolVar(&o.redisTLS.InsecureSkipVerify)
	flagvalue.Duration(app, "redis.dial-timeout", "Timeout for connecting to Redis.", "2s", &o.redisDial)
	flagvalue.Duration(app, "redis.read-timeout", "Timeout for one Redis reply (a scrape's deadline can shorten it).", "5s", &o.redisRead)
	flagvalue.Duration(app, "redis.write-timeout", "Timeout for writing one Redis request.", "5s", &o.redisWrite)
	flagvalue.Int(app, "redis.scan-count", "COUNT hint of each SCAN call.", "2000", &o.scanCount)
	flagvalue.Enum(app, "redis.read-mode", "track: keep a mirror of the usage state current with Redis key tracking, re-reading only changed keys; scan: read every usage key on every scrape.", mirror.ModeTrack, &o.readMode, mirror.ModeTrack, mirror.ModeScan)
	flagvalue.Duration(app, "redis.resync-interval", "How often a background full read checks the track mode's mirror and replaces it; 0 turns the check off.", "15m", &o.resync)
	flagvalue.Int(app, "redis.batch-size", "HGETALLs per pipelined round trip.", "1000", &o.batchSize)
	app.Flag("redis.max-reply-bytes", "Largest Redis reply held in memory: a usage hash over it is skipped and counted (oversized_hash); a pipelined batch may hold 8 times it. 0 means no bound.").Default("1MiB").BytesVar(&o.maxReply)
	app.Flag("usage.key-pattern", "Name of the usage hashes, with {tenant_id} and {period} (YYYYMM).").Default(usage.DefaultKeyPattern).StringVar(&o.keyPattern)
	flagvalue.Int(app, "usage.max-metric-types", "Most distinct metric types (hash fields) exported: the configured ones first, then those most tenants have; fields beyond are skipped and counted (metric_type_limit). 0 means no cap.", "16", &o.maxTypes)
	app.Flag("billing.timezone", "IANA time zone that defines the billing month.").Default("UTC").StringVar(&o.timezone)
	flagvalue.Duration(app, "scrape.timeout-offset", "Subtracted from X-Prometheus-Scrape-Timeout-Seconds to leave time for the response.", "250ms", &o.timeoutOffset)
	flagvalue.Duration(app, "scrape.max-timeout", "Longest a scrape may read; the deadline when Prometheus sends no timeout header.", "10s", &o.maxTimeout)
	app.Flag("postgres.dsn-file", "File holding the PostgreSQL DSN for plan limits (else env BILLING_EXPORTER_POSTGRES_DSN).").StringVar(&o.plans.DSNFile)
	flagvalue.Duration(app, "plans.refresh-interval", "How often a background read refreshes the plans that scrapes join with; a reload and the start read at once. 0 reads the plans source on every scrape.", "1m", &o.plansRefresh)
	app.Flag("plans.file", "YAML file of plans, tenant assignments and default limits, for deployments without PostgreSQL; re-read on SIGHUP or POST /-/reload.").StringVar(&o.plans.PlansFile)
	app.Flag("config.file", "Optional YAML: plans query, default limits, metric types, thresholds; re-read on SIGHUP or POST /-/reload.").StringVar(&o.configFile)
	app.Flag("demo", "Run on generated data in an in-process Redis, with the embedded demo plans: no external service needed.").BoolVar(&o.plans.Demo)
	app.Flag("metrics.tenant-series", "Export the per-tenant series (--no-metrics.tenant-series keeps only the fleet families, which stay exact).").Default("true").BoolVar(&o.tenantSeries)
	flagvalue.Int(app, "metrics.max-tenants", "Export per-tenant series for at most this many tenants, those the shipped alerts fire for first, then those closest to a limit; 0 means all.", "0", &o.maxTenants)
	app.Flag("auto-gomemlimit", "Set the Go runtime's soft memory limit (GOMEMLIMIT) to a share of the container's memory limit (cgroup), else of the host's memory; GOMEMLIMIT in the environment wins.").Default("true").BoolVar(&o.autoMemLimit)
	app.Flag("auto-gomemlimit.ratio", "Share of the memory limit that --auto-gomemlimit gives the Go runtime, in (0, 1].").Default("0.9").Float64Var(&o.autoMemLimitRatio)
	o.web = kingpinflag.AddFlags(app, ":9866")
	flag.AddFlags(app, o.log)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	return o
}

// validate checks the flags and parses the values they name.
func (o *options) validate() error {
	var err error
	if o.loc, err = period.LoadLocation(o.timezone); err != nil {
		return fmt.Errorf("--billing.timezone: %w", err)
	}
	if o.pattern, err = usage.ParseKeyPattern(o.keyPattern); err != nil {
		return fmt.Errorf("--usage.key-pattern: %w", err)
	}
	if err := server.CheckTelemetryPath(o.telemetryPath, o.disableAPI, o.enablePprof); err != nil {
		return fmt.Errorf("--web.telemetry-path: %w", err)
	}
	if !o.disablePages && (o.telemetryPath == pages.PathTenants || strings.HasPrefix(o.telemetryPath, pages.PathTenants+"/")) {
		return fmt.Errorf("--web.telemetry-path: %q is under the pages' %s (or use --web.disable-pages)", o.telemetryPath, pages.PathTenants)
	}
	if err := pages.CheckGrafanaURL(o.grafanaURL); err != nil {
		return fmt.Errorf("--web.grafana-url: %w", err)
	}
	switch {
	case o.maxTimeout <= 0:
		return fmt.Errorf("--scrape.max-timeout must be positive, got %v", o.maxTimeout)
	case o.idleTimeout <= 0:
		return fmt.Errorf("--web.idle-timeout must be positive, got %v", o.idleTimeout)
	case o.scanCount < 1 || o.batchSize < 1:
		return fmt.Errorf("--redis.scan-count and --redis.batch-size must be at least 1")
	case len(o.redisAddrs) > 1 && !o.redisCluster:
		return fmt.Errorf("--redis.addr: given %d times; several addresses are the seed nodes of a Redis Cluster and need --redis.cluster", len(o.redisAddrs))
	case o.redisCluster && o.plans.Demo:
		return fmt.Errorf("--redis.cluster: --demo runs its own single Redis")
	case math.IsNaN(o.autoMemLimitRatio) || o.autoMemLimitRatio <= 0 || o.autoMemLimitRatio > 1:
		return fmt.Errorf("--auto-gomemlimit.ratio must be in (0, 1], got %v", o.autoMemLimitRatio)
	}
	for _, addr := range o.redisAddrs {
		t, err := conn.ParseTarget(addr)
		if err != nil {
			return fmt.Errorf("--redis.addr: %w", err)
		}
		o.targets = append(o.targets, t)
	}
	if o.redisTLS != (conn.TLSFiles{}) && !o.targets[0].TLS {
		return fmt.Errorf("--redis.tls-* flags are set but --redis.addr is not a rediss:// URL")
	}
	if err := tracing.CheckEnv(); err != nil {
		return err
	}
	if f := o.web.WebConfigFile; f != nil && *f != "" {
		if err := web.Validate(*f); err != nil {
			return fmt.Errorf("--web.config.file: %w", err)
		}
	}
	return nil
}

func (o *options) redisPassword() (string, error) {
	return secret.Read(o.redisPassFile, "REDIS_PASSWORD")
}

// files is what the named files say, read whole before any of it is used.
type files struct {
	billing  billing.Config
	plans    *plansource.Setup
	redisTLS *tls.Config
}

// load reads every file; prev is the plans setup in force, nil at start.
func (o *options) load(prev *plansource.Setup) (*files, error) {
	f, cfg := &files{}, config.Default()
	var err error
	if o.configFile != "" {
		if cfg, err = config.Load(o.configFile); err != nil {
			return nil, fmt.Errorf("--config.file: %w", err)
		}
	}
	// Read now only to refuse a missing or empty file.
	if _, err := o.redisPassword(); err != nil {
		return nil, fmt.Errorf("--redis.password-file: %w", err)
	}
	if f.redisTLS, err = o.redisTLS.Config(); err != nil {
		return nil, fmt.Errorf("--redis.tls-*: %w", err)
	}
	if f.plans, err = plansource.Open(o.plans, cfg, prev); err != nil {
		return nil, err
	}
	f.billing = billing.Config{
		Plans:       f.plans.Source,
		PlansName:   f.plans.Name,
		Defaults:    f.plans.Defaults,
		MetricTypes: cfg.MetricTypes,
		Thresholds:  cfg.Thresholds,
	}
	return f, nil
}

// run serves until SIGINT or SIGTERM; SIGHUP and POST /-/reload reload the files.
func run(logger *slog.Logger, o *options) error {
	if err := o.validate(); err != nil {
		return err
	}
	f, err := o.load(nil)
	if err != nil {
		return err
	}
	plans := f.plans
	defer plans.Close()
	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())
	// Only now, so that an invalid flag or file is the only line.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if o.autoMemLimit {
		_, err := memlimit.Set(
			memlimit.WithRatio(o.autoMemLimitRatio),
			memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)),
			memlimit.WithLogger(logger.With("component", "automemlimit")),
		)
		if err != nil {
			logger.Warn("could not set the Go memory limit from the container's", "err", err)
		}
	}
	for _, t := range o.targets {
		if t.Password != "" {
			logger.Warn("--redis.addr carries a password, visible to anyone who can list processes (ps, /proc); put it in --redis.password-file or REDIS_PASSWORD instead",
				"redis", t.String())
		}
	}

	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	instruments := collector.NewInstruments(static)
	// Each Redis dial takes the last loaded TLS settings.
	var redisTLS atomic.Pointer[tls.Config]
	redisTLS.Store(f.redisTLS)
	target := o.targets[0]
	if o.plans.Demo {
		d, err := demo.Start(plans.DemoCatalog, plans.Defaults, o.pattern, o.loc, time.Second, logger)
		if err != nil {
			return err
		}
		defer d.Close()
		target = conn.Target{Address: d.Addr()}
	}
	connOpts := []conn.Option{
		// Asked at each dial: a rotated password file needs no reload.
		conn.WithPasswordFunc(o.redisPassword),
		conn.WithTimeouts(o.redisDial, o.redisRead, o.redisWrite),
		conn.WithScanCount(o.scanCount),
		conn.WithBatchSize(o.batchSize),
		conn.WithMaxReplyBytes(int(min(o.maxReply, units.Base2Bytes(1<<40)))),
		conn.WithTLSConfigFunc(redisTLS.Load),
		conn.WithObserver(instruments.ObserveRedis),
	}
	var st *read.Reader
	if o.redisCluster {
		st, err = read.NewCluster(o.targets, connOpts...)
	} else {
		st, err = read.New(target, connOpts...)
	}
	if err != nil {
		return fmt.Errorf("--redis.addr: %w", err)
	}
	defer st.Close()
	mirrorOpts := []mirror.Option{mirror.WithResyncInterval(o.resync), mirror.WithLogger(logger)}
	billingOpts := []billing.Option{
		billing.WithMaxReadTime(o.maxTimeout),
		billing.WithPlansRefresh(o.plansRefresh),
		billing.WithKeyPattern(o.pattern),
		billing.WithLocation(o.loc),
		billing.WithLogger(logger),
		billing.WithMaxMetricTypes(o.maxTypes),
		billing.WithConfig(f.billing),
	}
	// The demo's in-process Redis (miniredis) has no key tracking.
	if o.readMode == mirror.ModeScan || o.plans.Demo {
		mirrorOpts = append(mirrorOpts, mirror.WithScanMode())
	} else {
		// The mirror is fresh only for a read started after the call.
		billingOpts = append(billingOpts, billing.WithFreshReads())
	}
	mirror := mirror.New(st, o.pattern, mirrorOpts...)
	defer mirror.Close()
	static.MustRegister(mirror)
	service := billing.New(mirror, billingOpts...)
	defer service.Close()

	current := f // only apply touches it, one reload at a time
	reloader := reload.New(static, logger, func() error {
		next, err := o.load(current.plans)
		if err != nil {
			return err
		}
		redisTLS.Store(next.redisTLS)
		service.Reconfigure(next.billing)
		current = next
		return nil
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	reloader.WatchSIGHUP(ctx)

	mux := http.NewServeMux()
	mux.Handle(o.telemetryPath, collector.NewHandler(service, static, logger,
		collector.WithTimeoutOffset(o.timeoutOffset),
		collector.WithMaxTimeout(o.maxTimeout),
		collector.WithMaxRequests(o.maxRequests),
		collector.WithMaxUnsentBytes(int64(o.maxUnsent)),
		collector.WithTenantSeries(o.tenantSeries),
		collector.WithMaxTenants(o.maxTenants),
	))
	mux.HandleFunc("/-/healthy", server.Health)
	mux.HandleFunc("/-/ready", server.Health)
	mux.Handle("/-/reload", reloader)
	if !o.disableAPI {
		mux.Handle("/api/", api.New(service, api.WithLogger(logger), api.WithMetrics(api.NewMetrics(static))))
	}
	if !o.disablePages {
		h := pages.New(service, pages.WithLogger(logger), pages.WithGrafanaURL(o.grafanaURL))
		mux.Handle(pages.PathTenants, h)
		mux.Handle(pages.PathTenants+"/", h)
	}
	profileSeconds := 0
	if o.enablePprof {
		server.HandlePprof(mux)
		profileSeconds = server.CPUProfileSeconds(o.maxTimeout)
	}
	if o.telemetryPath != "/" {
		landing, err := server.Landing("Per-tenant billing usage from Redis ("+st.String()+"), joined with plan limits from "+plans.Describe()+".",
			version.Info(), o.telemetryPath, !o.disableAPI, !o.disablePages, profileSeconds)
		if err != nil {
			return err
		}
		mux.Handle("/", landing)
	}
	traces, err := tracing.Setup(context.Background(), version.Version)
	if err != nil {
		return err
	}
	defer func() {
		if err := traces.Shutdown(context.Background()); err != nil {
			logger.Warn("flushing traces", "err", err)
		}
	}()
	if traces.On() {
		logger.Info("tracing on (OTEL_* settings)", "exporter", traces.Exporter())
	}
	logger.Info("reading usage", "redis", st.String(), "key_pattern", o.pattern.String(),
		"timezone", o.loc.String(), "plans", plans.Describe())
	if len(plans.Defaults) == 0 {
		logger.Warn("no default limits configured: tenants without an active plan are reported as unlimited")
	}
	if o.plans.Demo {
		logger.Info("demo running: open the landing page, or curl the metrics", "redis", st.String(),
			"metrics", "http://localhost"+server.ListenPort(o.web)+o.telemetryPath)
	}
	return server.Serve(logger, traces.Handler(mux), o.web, o.maxTimeout, o.idleTimeout, o.maxConnections)
}
