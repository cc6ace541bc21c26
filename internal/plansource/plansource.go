// Package plansource decides where plan limits come from: PostgreSQL when a
// DSN is given, else a plans file, else the embedded demo plans (--demo),
// else nowhere (every tenant on the default limits). It decides at start
// (Open) and again at each reload (Reload), from the same flags.
package plansource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/billing-exporter/billing_exporter/config"
	"github.com/billing-exporter/billing_exporter/internal/demo"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
	"github.com/billing-exporter/billing_exporter/internal/secret"
)

// Flags are the command-line settings that choose the source.
type Flags struct {
	DSNFile   string // --postgres.dsn-file (else env BILLING_EXPORTER_POSTGRES_DSN)
	PlansFile string // --plans.file
	Demo      bool   // --demo
}

// Setup is the plans source chosen, and the default limits in force.
type Setup struct {
	Source   plans.Source // nil: every tenant on the defaults
	Name     string       // "postgres" or "file": what reports and logs call it
	path     string       // the plans file, for the landing page
	Defaults plans.Limits
	// DemoCatalog is the embedded demo plans, which --demo also seeds
	// Redis from; nil without --demo.
	DemoCatalog *plans.Catalog
	db          *sql.DB // the PostgreSQL pool, kept across reloads
	close       func()
}

// Describe says where plans come from, for logs and the landing page.
func (s *Setup) Describe() string {
	switch {
	case s.Source == nil:
		return "nowhere (every tenant on default limits)"
	case s.path != "":
		return s.Name + " " + s.path
	}
	return s.Name
}

// Close releases the source (the database pool). Call it on the Setup
// Open returned, once: the Setups of reloads share its pool.
func (s *Setup) Close() { s.close() }

const dsnEnv = "BILLING_EXPORTER_POSTGRES_DSN"

// readDSN returns what reads the DSN file (or the environment) each time it
// is called: at each new PostgreSQL connection, so that a rotated file
// needs no restart.
func readDSN(f Flags) func() (string, error) {
	return func() (string, error) { return secret.Read(f.DSNFile, dsnEnv) }
}

// Open picks the plans source. Giving both PostgreSQL and a plans file is a
// mistake worth stopping for: the operator cannot have meant both.
func Open(f Flags, cfg *config.Config) (*Setup, error) { return open(f, cfg, nil) }

// Reload reads the plans file and the DSN file again, with cfg (the config
// file read again), and returns the Setup to use from now on; s keeps
// serving meanwhile and is unchanged when Reload fails. A PostgreSQL pool
// is kept: its new connections read the DSN file anyway.
func (s *Setup) Reload(f Flags, cfg *config.Config) (*Setup, error) { return open(f, cfg, s.db) }

func open(f Flags, cfg *config.Config, db *sql.DB) (*Setup, error) {
	s := &Setup{Defaults: cfg.Defaults, close: func() {}}
	dsn, err := readDSN(f)()
	if err != nil {
		return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
	}
	switch {
	case f.Demo:
		if f.DSNFile != "" || f.PlansFile != "" {
			return nil, errors.New("--demo runs on the embedded demo plans: drop --postgres.dsn-file and --plans.file")
		}
		file, err := demo.Plans()
		if err != nil {
			return nil, err
		}
		if err := s.useFile(file, "(embedded demo plans)"); err != nil {
			return nil, err
		}
		s.DemoCatalog, err = file.Load(context.Background())
		return s, err
	case dsn != "" && f.PlansFile != "":
		return nil, errors.New("--plans.file and a PostgreSQL DSN are both set: use one plans source")
	case dsn != "":
		if db == nil {
			if db, err = postgres.Open(readDSN(f)); err != nil {
				return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
			}
			s.close = func() { db.Close() }
		} else if err := postgres.CheckDSN(dsn); err != nil {
			return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
		}
		src := postgres.New(db, postgres.WithMetricTypes(cfg.MetricTypeNames()), postgres.WithQuery(cfg.PlansQuery))
		s.Source, s.Name, s.db = src, "postgres", db
		return s, nil
	case f.PlansFile != "":
		file, err := plans.LoadFile(f.PlansFile)
		if err != nil {
			return nil, fmt.Errorf("--plans.file: %w", err)
		}
		return s, s.useFile(file, f.PlansFile)
	}
	return s, nil
}

// useFile uses a parsed plans file as the source, taking its defaults
// unless the config file set them too, which is ambiguous and rejected.
func (s *Setup) useFile(f *plans.FileSource, path string) error {
	s.Source, s.Name, s.path = f, "file", path
	if d, ok := f.Defaults(); ok {
		if s.Defaults != nil {
			return errors.New("default limits are set in both --config.file and the plans file: keep one")
		}
		s.Defaults = d
	}
	return nil
}
