package plans

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/billing-exporter/billing_exporter/internal/usage"
	"github.com/billing-exporter/billing_exporter/internal/yamlfile"
)

// FileSource is a plans file: plans, tenant assignments and default limits
// written by an operator in YAML.
//
//	plans:
//	  - {id: 1, name: starter, limits: {messages: 5000, storage: 1073741824, users: 5, whatsappSessions: 1}}
//	tenants:
//	  - {id: 1, plan: 1}
//	  - {id: 3}            # no active plan
//	defaults:
//	  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
//
// Ids may be written as numbers or strings. A limit of 0, like an absent
// one, means unlimited. Unlike a database, which the exporter skips bad
// rows of, a file is rejected whole: a mistake in it is the operator's to
// fix now, not a count to notice later.
type FileSource struct {
	catalog     *Catalog
	defaults    Limits
	hasDefaults bool
}

type fileDoc struct {
	Plans    []filePlan    `yaml:"plans"`
	Tenants  []fileTenant  `yaml:"tenants"`
	Defaults *FileDefaults `yaml:"defaults"`
}

type filePlan struct {
	ID     yamlfile.ID             `yaml:"id"`
	Name   string                  `yaml:"name"`
	Limits map[string]yamlfile.Int `yaml:"limits"`
}

type fileTenant struct {
	ID   yamlfile.ID `yaml:"id"`
	Plan yamlfile.ID `yaml:"plan"` // absent or null: no active plan
}

// FileDefaults is the defaults section of a plans file or a config file.
type FileDefaults struct {
	Limits map[string]yamlfile.Int `yaml:"limits"`
}

// LoadFile reads and parses a plans file.
func LoadFile(path string) (*FileSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plans file: %w", err)
	}
	return ParseFile(data, path)
}

// ParseFile parses a plans file; name is used in errors, which read
// "name:line: problem".
func ParseFile(data []byte, name string) (*FileSource, error) {
	var raw fileDoc
	doc, err := yamlfile.Decode(data, name, &raw)
	if err != nil {
		return nil, err
	}
	if doc.Empty() {
		// Most likely the wrong file was mounted; an empty catalog would
		// put every tenant on no limits at all without a word.
		return nil, doc.Errorf(0, "no plans, tenants or defaults")
	}
	s := &FileSource{catalog: NewCatalog()}
	if err := s.addPlans(doc, raw.Plans); err != nil {
		return nil, err
	}
	if err := s.addTenants(doc, raw.Tenants); err != nil {
		return nil, err
	}
	if raw.Defaults != nil {
		limits, err := ParseLimitsAt(doc, raw.Defaults.Limits, "defaults", "limits")
		if err != nil {
			return nil, err
		}
		s.defaults, s.hasDefaults = limits, true
	}
	return s, nil
}

func (s *FileSource) addPlans(doc *yamlfile.Doc, raw []filePlan) error {
	lines := map[string]int{} // plan id -> line it was first defined on
	for i, p := range raw {
		line := doc.Line("plans", i)
		id := string(p.ID)
		if id == "" {
			return doc.Errorf(line, "plan has no id")
		}
		if err := usage.ValidateID(usage.PlanID, id); err != nil {
			return doc.Errorf(doc.Line("plans", i, "id"), "invalid plan id %q: %v", id, err)
		}
		if p.Name == "" {
			return doc.Errorf(line, "plan %s has no name", id)
		}
		if err := ValidatePlanName(p.Name); err != nil {
			return doc.Errorf(doc.Line("plans", i, "name"), "plan %s: %v", id, err)
		}
		if first, dup := lines[id]; dup {
			return doc.Errorf(line, "duplicate plan id %s (first defined on line %d)", id, first)
		}
		lines[id] = line
		limits, err := ParseLimitsAt(doc, p.Limits, "plans", i, "limits")
		if err != nil {
			return err
		}
		s.catalog.Plans[id] = Plan{ID: id, Name: p.Name, Limits: limits}
	}
	return nil
}

func (s *FileSource) addTenants(doc *yamlfile.Doc, raw []fileTenant) error {
	lines := map[string]int{}
	for i, t := range raw {
		line := doc.Line("tenants", i)
		id, plan := string(t.ID), string(t.Plan)
		if id == "" {
			return doc.Errorf(line, "tenant has no id")
		}
		if err := usage.ValidateID(usage.TenantID, id); err != nil {
			return doc.Errorf(doc.Line("tenants", i, "id"), "invalid tenant id %q: %v", id, err)
		}
		if first, dup := lines[id]; dup {
			return doc.Errorf(line, "tenant %s listed twice (first on line %d)", id, first)
		}
		lines[id] = line
		if _, ok := s.catalog.Plans[plan]; plan != "" && !ok {
			return doc.Errorf(doc.Line("tenants", i, "plan"), "tenant %s is on plan %s, which the file does not define", id, plan)
		}
		s.catalog.Tenants[id] = plan
	}
	return nil
}

// ParseLimitsAt checks operator-written limits in a YAML document (a plans
// file's or a config file's defaults), pointing errors at the line of the
// offending entry under path.
func ParseLimitsAt(doc *yamlfile.Doc, raw map[string]yamlfile.Int, path ...any) (Limits, error) {
	limits, err := ParseLimits(yamlfile.Ints(raw))
	var le *LimitError
	if errors.As(err, &le) {
		return nil, doc.Errorf(doc.Line(append(path, le.MetricType)...), "%v", le)
	}
	return limits, err
}

// Load returns a copy of the file's catalog, which the caller may keep.
func (s *FileSource) Load(ctx context.Context) (*Catalog, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.catalog.Clone(), nil
}

// Defaults returns the file's default limits, and whether it has any.
func (s *FileSource) Defaults() (Limits, bool) {
	return s.defaults.Clone(), s.hasDefaults
}

// LimitError is a limit that operator input may not set.
type LimitError struct {
	MetricType string
	Problem    string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit %q: %s", e.MetricType, e.Problem)
}

// ParseLimits turns limits written by an operator into Limits: each name
// must be a valid metric type, each value zero (unlimited, so not stored)
// or positive. The error, a *LimitError, names the first bad entry in name
// order, so the same input always gives the same error.
func ParseLimits(raw map[string]int64) (Limits, error) {
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	limits := Limits{}
	for _, name := range names {
		v := raw[name]
		if err := usage.ValidateMetricType(name); err != nil {
			return nil, &LimitError{MetricType: name, Problem: err.Error()}
		}
		if v < 0 {
			return nil, &LimitError{MetricType: name, Problem: fmt.Sprintf("%d is negative (use 0 or leave it out for unlimited)", v)}
		}
		if v > 0 {
			limits[name] = v
		}
	}
	return limits, nil
}
