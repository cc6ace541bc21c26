package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/billing-exporter/billing_exporter/config"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
)

// plansSetup is where plan limits come from, decided once at start.
type plansSetup struct {
	source   plans.Source // nil: every tenant on the defaults
	name     string       // "postgres", "file" or "demo file"
	path     string       // the plans file, for the landing page
	defaults plans.Limits
	// demoCatalog is the embedded demo plans, which --demo also seeds
	// Redis from.
	demoCatalog *plans.Catalog
	close       func()
}

func (p *plansSetup) describe() string {
	switch {
	case p.source == nil:
		return "nowhere (every tenant on default limits)"
	case p.path != "":
		return p.name + " " + p.path
	}
	return p.name
}

// openPlans picks the plans source: PostgreSQL when a DSN is given, else the
// plans file, else none. Giving both is a mistake worth stopping for: the
// operator cannot have meant both.
func openPlans(o options, cfg *config.Config) (*plansSetup, error) {
	setup := &plansSetup{defaults: cfg.Defaults, close: func() {}}
	dsn, err := secret(o.dsnFile, "BILLING_EXPORTER_POSTGRES_DSN")
	if err != nil {
		return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
	}
	if o.demo {
		if o.dsnFile != "" || o.plansFile != "" {
			return nil, errors.New("--demo runs on the embedded demo plans: drop --postgres.dsn-file and --plans.file")
		}
		f, err := plans.ParseFile(plans.DemoFile, "demo plans")
		if err != nil {
			return nil, err
		}
		return setup, setup.useFile(f, "file", "(embedded demo plans)")
	}
	switch {
	case dsn != "" && o.plansFile != "":
		return nil, errors.New("--plans.file and a PostgreSQL DSN are both set: use one plans source")
	case dsn != "":
		db, err := postgres.Open(dsn)
		if err != nil {
			return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
		}
		opts := []postgres.Option{postgres.WithMetricTypes(cfg.MetricTypeNames())}
		if cfg.PlansQuery != "" {
			opts = append(opts, postgres.WithQuery(cfg.PlansQuery))
		}
		setup.source, setup.name = postgres.New(db, opts...), "postgres"
		setup.close = func() { db.Close() }
		return setup, nil
	case o.plansFile != "":
		f, err := plans.LoadFile(o.plansFile)
		if err != nil {
			return nil, fmt.Errorf("--plans.file: %w", err)
		}
		return setup, setup.useFile(f, "file", o.plansFile)
	}
	return setup, nil
}

// useFile uses a parsed plans file as the source, taking its defaults
// unless the config file set them too, which is ambiguous and rejected.
func (p *plansSetup) useFile(f *plans.FileSource, name, path string) error {
	p.source, p.name, p.path = f, name, path
	if d, ok := f.Defaults(); ok {
		if p.defaults != nil {
			return errors.New("default limits are set in both --config.file and the plans file: keep one")
		}
		p.defaults = d
	}
	var err error
	p.demoCatalog, err = f.Load(context.Background())
	return err
}

// listenPort returns ":port" of the first listen address, for the demo's
// hint of where to look.
func listenPort(webConfig *web.FlagConfig) string {
	if webConfig.WebListenAddresses == nil || len(*webConfig.WebListenAddresses) == 0 {
		return ""
	}
	addr := (*webConfig.WebListenAddresses)[0]
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return strings.TrimPrefix(addr, "localhost")
}
