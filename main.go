// Command billing_exporter exposes a multi-tenant SaaS's billing state (usage
// hashes in Redis joined with plan limits) as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

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

	"github.com/billing-exporter/billing_exporter/api"
	"github.com/billing-exporter/billing_exporter/billing"
	"github.com/billing-exporter/billing_exporter/collector"
	"github.com/billing-exporter/billing_exporter/config"
	"github.com/billing-exporter/billing_exporter/demo"
	"github.com/billing-exporter/billing_exporter/period"
	"github.com/billing-exporter/billing_exporter/redisstore"
	"github.com/billing-exporter/billing_exporter/usage"
)

const exporterName = "billing_exporter"

// options holds every command-line setting.
type options struct {
	telemetryPath string
	redisAddrs    []string
	redisCluster  bool
	redisPassFile string
	redisDial     time.Duration
	redisRead     time.Duration
	redisWrite    time.Duration
	scanCount     int
	batchSize     int
	keyPattern    string
	timezone      string
	timeoutOffset time.Duration
	maxTimeout    time.Duration
	maxRequests   int
	dsnFile       string
	plansFile     string
	configFile    string
	demo          bool
	tenantSeries  bool
	maxTenants    int
	maxReply      units.Base2Bytes
	maxTypes      int
	disableAPI    bool
	redisTLS      redisstore.TLSFiles
}

func main() {
	app := kingpin.New(exporterName, "Prometheus exporter for per-tenant billing usage kept in Redis, joined with plan limits.")
	var o options
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&o.telemetryPath)
	intFlag(app, "web.max-requests", "Maximum number of concurrent scrapes; 0 means no limit.", "40", &o.maxRequests)
	app.Flag("redis.addr", "Redis address: host:port, or a redis:// or rediss:// URL (user, db). Repeatable with --redis.cluster: the cluster's seed nodes.").Default("localhost:6379").StringsVar(&o.redisAddrs)
	app.Flag("redis.cluster", "Treat --redis.addr (repeatable) as Redis Cluster seed nodes: read every master of the cluster.").BoolVar(&o.redisCluster)
	app.Flag("redis.password-file", "File holding the Redis password (else env REDIS_PASSWORD).").StringVar(&o.redisPassFile)
	app.Flag("redis.tls-ca-file", "PEM CA bundle for rediss:// (else the system roots).").StringVar(&o.redisTLS.CAFile)
	app.Flag("redis.tls-cert-file", "Client certificate for rediss://, when Redis requires one.").StringVar(&o.redisTLS.CertFile)
	app.Flag("redis.tls-key-file", "Key of the client certificate.").StringVar(&o.redisTLS.KeyFile)
	app.Flag("redis.tls-server-name", "Host name to verify in Redis' certificate (default: the address's host).").StringVar(&o.redisTLS.ServerName)
	app.Flag("redis.tls-insecure-skip-verify", "Do not verify Redis' certificate (testing only).").BoolVar(&o.redisTLS.InsecureSkipVerify)
	durationFlag(app, "redis.dial-timeout", "Timeout for connecting to Redis.", "2s", &o.redisDial)
	durationFlag(app, "redis.read-timeout", "Timeout for one Redis reply (a scrape's deadline can shorten it).", "5s", &o.redisRead)
	durationFlag(app, "redis.write-timeout", "Timeout for writing one Redis request.", "5s", &o.redisWrite)
	intFlag(app, "redis.scan-count", "COUNT hint of each SCAN call.", "2000", &o.scanCount)
	intFlag(app, "redis.batch-size", "HGETALLs per pipelined round trip.", "1000", &o.batchSize)
	app.Flag("redis.max-reply-bytes", "Largest Redis reply held in memory: a usage hash over it is skipped and counted (oversized_hash); a pipelined batch may hold 8 times it. 0 means no bound.").Default("1MiB").BytesVar(&o.maxReply)
	app.Flag("usage.key-pattern", "Name of the usage hashes, with {tenant_id} and {period} (YYYYMM).").Default(usage.DefaultKeyPattern).StringVar(&o.keyPattern)
	intFlag(app, "usage.max-metric-types", "Most distinct metric types (hash fields) exported: the configured ones first, then those most tenants have; fields beyond are skipped and counted (metric_type_limit). 0 means no cap.", "16", &o.maxTypes)
	app.Flag("billing.timezone", "IANA time zone that defines the billing month.").Default("UTC").StringVar(&o.timezone)
	durationFlag(app, "scrape.timeout-offset", "Subtracted from X-Prometheus-Scrape-Timeout-Seconds to leave time for the response.", "250ms", &o.timeoutOffset)
	durationFlag(app, "scrape.max-timeout", "Longest a scrape may read; the deadline when Prometheus sends no timeout header.", "10s", &o.maxTimeout)
	app.Flag("postgres.dsn-file", "File holding the PostgreSQL DSN for plan limits (else env BILLING_EXPORTER_POSTGRES_DSN).").StringVar(&o.dsnFile)
	app.Flag("plans.file", "YAML file of plans, tenant assignments and default limits, for deployments without PostgreSQL.").StringVar(&o.plansFile)
	app.Flag("config.file", "Optional YAML: plans query, default limits, metric types, thresholds.").StringVar(&o.configFile)
	app.Flag("web.disable-api", "Disable the read-only JSON API under /api/ (see /api/v1/openapi.yaml).").BoolVar(&o.disableAPI)
	app.Flag("demo", "Run on generated data in an in-process Redis, with the embedded demo plans: no external service needed.").BoolVar(&o.demo)
	app.Flag("metrics.tenant-series", "Export the per-tenant series (--no-metrics.tenant-series keeps only the fleet families, which stay exact).").Default("true").BoolVar(&o.tenantSeries)
	intFlag(app, "metrics.max-tenants", "Export per-tenant series for at most this many tenants, those closest to a limit first; 0 means all.", "0", &o.maxTenants)
	webConfig := kingpinflag.AddFlags(app, ":9866")
	logConfig := &promslog.Config{}
	flag.AddFlags(app, logConfig)
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(os.Args[1:]); err != nil {
		app.Fatalf("%v", err)
	}
	logger := promslog.New(logConfig)
	if os.Getenv("GOGC") == "" {
		// A scrape allocates about 1.7 KB per tenant (BenchmarkScrape:
		// 170 MB at 100k). Measured at 100k tenants (BENCHMARKS.md), GOGC
		// 200 instead of 100 took the median scrape from 1.40 s to 1.16 s
		// for 150 → 190 MiB of peak RSS. GOGC in the environment still wins.
		debug.SetGCPercent(200)
	}

	if err := run(logger, o, webConfig); err != nil {
		// One line, whatever the error (YAML errors span several).
		app.Fatalf("%s", strings.Join(strings.Fields(err.Error()), " "))
	}
}

// run wires the exporter and serves until SIGINT or SIGTERM.
func run(logger *slog.Logger, o options, webConfig *web.FlagConfig) error {
	loc, err := period.LoadLocation(o.timezone)
	if err != nil {
		return fmt.Errorf("--billing.timezone: %w", err)
	}
	pattern, err := usage.ParseKeyPattern(o.keyPattern)
	if err != nil {
		return fmt.Errorf("--usage.key-pattern: %w", err)
	}
	if err := checkTelemetryPath(o.telemetryPath, o.disableAPI); err != nil {
		return fmt.Errorf("--web.telemetry-path: %w", err)
	}
	if o.maxTimeout <= 0 {
		return fmt.Errorf("--scrape.max-timeout must be positive, got %v", o.maxTimeout)
	}
	if o.maxTypes < 0 {
		return fmt.Errorf("--usage.max-metric-types must not be negative, got %d", o.maxTypes)
	}
	if o.maxReply < 0 {
		return fmt.Errorf("--redis.max-reply-bytes must not be negative, got %v", o.maxReply)
	}
	if o.scanCount < 1 || o.batchSize < 1 {
		return fmt.Errorf("--redis.scan-count and --redis.batch-size must be at least 1")
	}
	password, err := secret(o.redisPassFile, "REDIS_PASSWORD")
	if err != nil {
		return fmt.Errorf("--redis.password-file: %w", err)
	}
	if len(o.redisAddrs) > 1 && !o.redisCluster {
		return fmt.Errorf("--redis.addr: given %d times; several addresses are the seed nodes of a Redis Cluster and need --redis.cluster", len(o.redisAddrs))
	}
	if o.redisCluster && o.demo {
		return fmt.Errorf("--redis.cluster: --demo runs its own single Redis")
	}
	var targets []redisstore.Target
	for _, addr := range o.redisAddrs {
		t, err := redisstore.ParseTarget(addr)
		if err != nil {
			return fmt.Errorf("--redis.addr: %w", err)
		}
		targets = append(targets, t)
	}
	target := targets[0]
	redisTLS, err := o.redisTLS.Config()
	if err != nil {
		return fmt.Errorf("--redis.tls-*: %w", err)
	}
	if redisTLS != nil && !target.TLS {
		return fmt.Errorf("--redis.tls-* flags are set but --redis.addr is not a rediss:// URL")
	}
	if webConfig.WebConfigFile != nil && *webConfig.WebConfigFile != "" {
		if err := web.Validate(*webConfig.WebConfigFile); err != nil {
			return fmt.Errorf("--web.config.file: %w", err)
		}
	}
	cfg := config.Default()
	if o.configFile != "" {
		if cfg, err = config.Load(o.configFile); err != nil {
			return fmt.Errorf("--config.file: %w", err)
		}
	}
	src, err := openPlans(o, cfg)
	if err != nil {
		return err
	}
	defer src.close()

	logger.Info("starting "+exporterName, "version", version.Info(), "build_context", version.BuildContext())

	if o.demo {
		d, err := demo.Start(src.demoCatalog, src.defaults, pattern, loc, time.Second, logger)
		if err != nil {
			return err
		}
		defer d.Close()
		target = redisstore.Target{Address: d.Addr()}
	}

	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	instruments := collector.NewInstruments(static)

	storeOpts := []redisstore.Option{
		redisstore.WithPassword(password),
		redisstore.WithTimeouts(o.redisDial, o.redisRead, o.redisWrite),
		redisstore.WithScanCount(o.scanCount),
		redisstore.WithBatchSize(o.batchSize),
		redisstore.WithObserver(instruments.ObserveRedis),
		redisstore.WithTLSConfig(redisTLS),
		redisstore.WithMaxReplyBytes(int(min(o.maxReply, units.Base2Bytes(1<<40)))),
	}
	var store interface {
		billing.UsageReader
		collector.InfoReader
		Close() error
	}
	redisDesc := target.String()
	if o.redisCluster {
		cluster, err := redisstore.NewCluster(targets, storeOpts...)
		if err != nil {
			return fmt.Errorf("--redis.addr: %w", err)
		}
		store, redisDesc = cluster, cluster.String()
	} else {
		single, err := redisstore.New(target, storeOpts...)
		if err != nil {
			return err
		}
		store = single
	}
	defer store.Close()

	serviceOpts := []billing.Option{
		billing.WithKeyPattern(pattern),
		billing.WithLocation(loc),
		billing.WithLogger(logger),
		billing.WithDefaults(src.defaults),
		billing.WithMetricTypes(cfg.MetricTypes),
		billing.WithThresholds(cfg.Thresholds),
		billing.WithMaxMetricTypes(o.maxTypes),
	}
	if src.source != nil {
		serviceOpts = append(serviceOpts, billing.WithPlans(src.source, src.name))
	}
	service := billing.New(store, serviceOpts...)
	scraper := collector.NewScraper(service, store)

	mux := http.NewServeMux()
	mux.Handle(o.telemetryPath, collector.NewHandler(scraper, static, logger,
		collector.WithTimeoutOffset(o.timeoutOffset),
		collector.WithMaxTimeout(o.maxTimeout),
		collector.WithMaxRequests(o.maxRequests),
		collector.WithTenantSeries(o.tenantSeries),
		collector.WithMaxTenants(o.maxTenants),
	))
	mux.HandleFunc("/-/healthy", healthHandler)
	mux.HandleFunc("/-/ready", healthHandler)
	if !o.disableAPI {
		mux.Handle("/api/", api.New(service, api.WithLogger(logger), api.WithMetrics(api.NewMetrics(static))))
	}
	if o.telemetryPath != "/" {
		landingConfig := web.LandingConfig{
			Name:        "Billing Exporter",
			Description: "Per-tenant billing usage from Redis (" + redisDesc + "), joined with plan limits from " + src.describe() + ".",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: o.telemetryPath, Text: "Metrics"},
				{Address: "/-/healthy", Text: "Health", Description: "liveness and readiness; reads no data source"},
			},
		}
		if !o.disableAPI {
			landingConfig.Links = append(landingConfig.Links, web.LandingLinks{
				Address: "/api/v1/openapi.yaml", Text: "API (OpenAPI document)",
				Description: "read-only JSON: /api/v1/tenants/{tenant_id}/usage, /api/v1/tenants, /api/v1/plans",
			})
		}
		landing, err := web.NewLandingPage(landingConfig)
		if err != nil {
			return fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}

	logger.Info("reading usage", "redis", redisDesc, "key_pattern", pattern.String(),
		"timezone", loc.String(), "plans", src.describe())
	if len(src.defaults) == 0 {
		logger.Warn("no default limits configured: tenants without an active plan are reported as unlimited")
	}
	if o.demo {
		logger.Info("demo running: open the landing page, or curl the metrics", "redis", target.String(),
			"metrics", "http://localhost"+listenPort(webConfig)+o.telemetryPath)
	}
	return serve(logger, mux, webConfig)
}

// serve runs the HTTP server with exporter-toolkit (TLS and basic auth from
// --web.config.file) until a signal asks for a graceful shutdown.
func serve(logger *slog.Logger, handler http.Handler, webConfig *web.FlagConfig) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, webConfig, logger) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// secret reads a secret from a file, else from an environment variable. The
// value is trimmed of surrounding white space (files usually end in a
// newline) and never logged. A file that is given but empty is an error:
// silently running without the secret (no PostgreSQL, no Redis password)
// would look like working.
func secret(path, env string) (string, error) {
	if path == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// checkTelemetryPath refuses paths the mux cannot take or that would
// shadow the exporter's other endpoints.
func checkTelemetryPath(path string, apiDisabled bool) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%q must start with /", path)
	case path == "/-/healthy" || path == "/-/ready":
		return fmt.Errorf("%q is the health endpoint", path)
	case !apiDisabled && (path == "/api" || strings.HasPrefix(path, "/api/")):
		return fmt.Errorf("%q is under the API's /api/ (or use --web.disable-api)", path)
	case strings.ContainsAny(path, " {}"):
		return fmt.Errorf("%q is not a plain path", path)
	}
	return nil
}
