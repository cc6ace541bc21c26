// Package plansource picks the plans source from the flags.
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

// Flags choose the source.
type Flags struct {
	DSNFile   string // else $BILLING_EXPORTER_POSTGRES_DSN
	PlansFile string
	Demo      bool
}

// Setup is the chosen source and defaults.
type Setup struct {
	Source      plans.Source // nil: defaults for all
	Name        string
	path        string
	Defaults    plans.Limits
	DemoCatalog *plans.Catalog
	db          *sql.DB // kept across reloads
	close       func()
}

// Describe says where plans come from.
func (s *Setup) Describe() string {
	switch {
	case s.Source == nil:
		return "nowhere (every tenant on default limits)"
	case s.path != "":
		return s.Name + " " + s.path
	}
	return s.Name
}

// Close releases the pool; call it once.
func (s *Setup) Close() { s.close() }

const dsnEnv = "BILLING_EXPORTER_POSTGRES_DSN"

// Open picks the plans source; a reload shares prev's pool.
func Open(f Flags, cfg *config.Config, prev *Setup) (*Setup, error) {
	s := &Setup{Defaults: cfg.Defaults, close: func() {}}
	var db *sql.DB
	if prev != nil {
		db = prev.db
	}
	readDSN := func() (string, error) { return secret.Read(f.DSNFile, dsnEnv) } // afresh for each connection
	dsn, err := readDSN()
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
		name := "$" + dsnEnv
		if f.DSNFile != "" {
			name = f.DSNFile
		}
		if db == nil {
			if db, err = postgres.Open(name, readDSN); err != nil {
				return nil, fmt.Errorf("--postgres.dsn-file: %w", err)
			}
			s.close = func() { db.Close() }
		} else if err := postgres.CheckDSN(name, dsn); err != nil {
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
