package plans

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v4"

	"github.com/billing-exporter/billing_exporter/internal/usage"
	"github.com/billing-exporter/billing_exporter/internal/yamlfile"
)

// FileSource is a plans file; any mistake refuses it whole.
type FileSource struct {
	catalog  *Catalog
	defaults Limits // nil without a defaults section
}

type fileDoc struct {
	Plans    []filePlan    `yaml:"plans"`
	Tenants  []fileTenant  `yaml:"tenants"`
	Defaults *FileDefaults `yaml:"defaults"`
}

type filePlan struct {
	ID     fileID           `yaml:"id"`
	Name   string           `yaml:"name"`
	Limits map[string]int64 `yaml:"limits"`
}

type fileTenant struct {
	ID   fileID `yaml:"id"`
	Name string `yaml:"name"`
	Plan fileID `yaml:"plan"`
}

// FileDefaults is a file's defaults section.
type FileDefaults struct {
	Limits map[string]int64 `yaml:"limits"`
}

// maxFileSize bounds a plans file; larger fleets belong in PostgreSQL.
const maxFileSize = 16 << 20

// LoadFile reads a plans file.
func LoadFile(path string) (*FileSource, error) {
	data, err := yamlfile.ReadFile(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("plans file: %w", err)
	}
	return ParseFile(data, path)
}

// ParseFile parses a plans file.
func ParseFile(data []byte, name string) (*FileSource, error) {
	var raw fileDoc
	doc, err := yamlfile.Decode(data, name, &raw)
	if err != nil {
		return nil, err
	}
	if doc.Empty() {
		// Likely the wrong file; it would silently lift every limit.
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
		if s.defaults, err = ParseLimitsAt(doc, raw.Defaults.Limits, "defaults", "limits"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *FileSource) addPlans(doc *yamlfile.Doc, raw []filePlan) error {
	lines := map[string]int{}
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
	tenants := make([]Tenant, 0, len(raw))
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
		if t.Name != "" {
			if err := ValidateTenantName(t.Name); err != nil {
				return doc.Errorf(doc.Line("tenants", i, "name"), "tenant %s: %v", id, err)
			}
		}
		if _, ok := s.catalog.Plans[plan]; plan != "" && !ok {
			return doc.Errorf(doc.Line("tenants", i, "plan"), "tenant %s is on plan %s, which the file does not define", id, plan)
		}
		tenants = append(tenants, Tenant{ID: id, Plan: plan, Name: t.Name})
	}
	s.catalog.replaceTenants(tenants)
	return nil
}

// ParseLimitsAt parses limits at path; 0 means unlimited.
func ParseLimitsAt(doc *yamlfile.Doc, raw map[string]int64, path ...any) (Limits, error) {
	limits := Limits{}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		line := doc.Line(append(path, name)...)
		if err := usage.ValidateMetricType(name); err != nil {
			return nil, doc.Errorf(line, "limit %q: %v", name, err)
		}
		if v := raw[name]; v < 0 {
			return nil, doc.Errorf(line, "limit %q: %d is negative (use 0 or leave it out for unlimited)", name, v)
		} else if v > 0 {
			limits[name] = v
		}
	}
	return limits, nil
}

// Load returns a copy.
func (s *FileSource) Load(ctx context.Context) (*Catalog, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.catalog.Clone(), nil
}

// Defaults returns the file's defaults, if any.
func (s *FileSource) Defaults() (Limits, bool) {
	return maps.Clone(s.defaults), s.defaults != nil
}

// fileID is an integer or string id.
type fileID string

func (id *fileID) UnmarshalYAML(n *yaml.Node) error {
	var v int64
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		*id = fileID(n.Value)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Load(&v) == nil:
		*id = fileID(strconv.FormatInt(v, 10)) // 0x1F reads as 31
	default:
		return fmt.Errorf("an id must be an integer or a string, not %s", n.ShortTag())
	}
	return nil
}
