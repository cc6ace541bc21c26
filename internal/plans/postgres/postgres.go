// Package postgres reads plans from PostgreSQL; see docs/plans-query.md.
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// DefaultQuery reads examples/schema.sql; COALESCE keeps a missing plan's id.
const DefaultQuery = `SELECT t.id                    AS tenant_id,
       t.name                  AS tenant_name,
       COALESCE(p.id, t.plan_id) AS plan_id,
       p.name                  AS plan_name,
       p.max_messages          AS "limit_messages",
       p.max_storage_bytes     AS "limit_storage",
       p.max_users             AS "limit_users",
       p.max_whatsapp_sessions AS "limit_whatsappSessions"
FROM tenants t
FULL OUTER JOIN plans p ON p.id = t.plan_id`

// Reasons a row or limit is skipped.
const (
	reasonEmptyRow              = "empty_row"
	reasonInvalidTenantID       = "invalid_tenant_id"
	reasonInvalidPlanID         = "invalid_plan_id"
	reasonUnknownPlan           = "unknown_plan"
	reasonInvalidPlanName       = "invalid_plan_name"
	reasonInvalidTenantName     = "invalid_tenant_name"
	reasonNegativeLimit         = "negative_limit"
	reasonNonIntegerLimit       = "non_integer_limit"
	reasonConflictingPlan       = "conflicting_plan"
	reasonConflictingTenantPlan = "conflicting_tenant_plan"
)

const limitPrefix = "limit_"

// Source is a PostgreSQL plans.Source.
type Source struct {
	db          *sql.DB
	query       string
	metricTypes []string
	lastRows    atomic.Int64
	lastSize    atomic.Int64 // of the last load's ids and names
	last        atomic.Pointer[plans.Catalog]
}

// Option configures a Source.
type Option func(*Source)

// WithQuery replaces DefaultQuery unless q is empty.
func WithQuery(q string) Option {
	return func(s *Source) {
		if strings.TrimSpace(q) != "" {
			s.query = q
		}
	}
}

// WithMetricTypes sets the spellings lower-cased columns match, unless empty.
func WithMetricTypes(types []string) Option {
	return func(s *Source) {
		if len(types) > 0 {
			s.metricTypes = append([]string(nil), types...)
		}
	}
}

// New returns a Source.
func New(db *sql.DB, opts ...Option) *Source {
	s := &Source{db: db, query: DefaultQuery, metricTypes: usage.MetricTypeNames(usage.DefaultMetricTypes)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open prepares a pool whose new connections each call dsn, named name in
// errors, so a rotated DSN needs no restart.
func Open(name string, dsn func() (string, error)) (*sql.DB, error) {
	cfg, err := parseDSN(name, dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg, stdlib.OptionBeforeConnect(func(_ context.Context, cc *pgx.ConnConfig) error {
		cfg, err := parseDSN(name, dsn)
		if err == nil {
			*cc = *cfg
		}
		return err
	}))
	// One query per scrape; the connection limit is shared.
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(1)
	// Recycling picks up a failover or a rotated DSN.
	db.SetConnMaxLifetime(10 * time.Minute)
	return db, nil
}

// CheckDSN parses dsn; its error names the problem and name, never the DSN's text.
func CheckDSN(name, dsn string) error {
	_, err := parseDSN(name, func() (string, error) { return dsn, nil })
	return err
}

// parseDSN describes a refused DSN in fixed words: the driver's messages
// quote it, and a malformed one defeats redaction.
func parseDSN(name string, dsn func() (string, error)) (*pgx.ConnConfig, error) {
	d, err := dsn()
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	problem := shapeProblem(d)
	var cfg *pgx.ConnConfig
	if problem == "" {
		if cfg, err = pgx.ParseConfig(d); err != nil {
			problem = parseProblem(err)
		} else {
			problem = runtimeParamProblem(cfg.RuntimeParams)
		}
	}
	if problem != "" {
		return nil, fmt.Errorf("postgres DSN in %s does not parse: %s", name, problem)
	}
	return cfg, nil
}

// Load runs the plans query and builds a catalog of its rows.
func (s *Source) Load(ctx context.Context) (*plans.Catalog, error) {
	rows, err := s.db.QueryContext(ctx, s.query)
	if err != nil {
		return nil, fmt.Errorf("plans query: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("plans query: %w", err)
	}
	lay, err := s.layout(cols)
	if err != nil {
		return nil, fmt.Errorf("plans query: %w", err)
	}
	values := make([]any, len(cols))
	dest := make([]any, len(cols))
	for i := range values {
		dest[i] = &values[i]
	}
	limits := make([]int64, len(lay.limits))
	ids := planIDs{}
	b := &builder{lay: lay, plans: map[string]*planRows{}, invalid: map[string]int{},
		tenants: plans.NewBuilder(int(s.lastRows.Load()), int(s.lastSize.Load()))}
	// An unchanged refresh keeps the last table rather than a second copy.
	if last := s.last.Load(); last != nil {
		b.tenants.Reuse(last)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("plans query: %w", err)
		}
		r, name := lay.row(values, limits, ids)
		if err := b.add(r, name, limits, values); err != nil {
			return nil, fmt.Errorf("plans query: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("plans query: %w", err)
	}
	s.lastRows.Store(int64(b.rows))
	s.lastSize.Store(int64(b.tenants.Size()))
	cat := b.catalog()
	s.last.Store(cat)
	return cat, nil
}

type layout struct {
	tenantID, planID, planName int
	tenantName                 int // -1: the query has no names
	limits                     []limitColumn
}

type limitColumn struct {
	index      int
	metricType string
}

func (s *Source) layout(cols []string) (*layout, error) {
	lay := &layout{tenantID: -1, planID: -1, planName: -1, tenantName: -1}
	required := map[string]*int{"tenant_id": &lay.tenantID, "plan_id": &lay.planID, "plan_name": &lay.planName,
		"tenant_name": &lay.tenantName}
	limitCols := map[string]string{}
	for i, col := range cols {
		lower := strings.ToLower(col)
		if idx, ok := required[lower]; ok {
			if *idx >= 0 {
				return nil, fmt.Errorf("column %s appears twice", lower)
			}
			*idx = i
			continue
		}
		if !strings.HasPrefix(lower, limitPrefix) {
			continue
		}
		mt := s.metricType(col[len(limitPrefix):])
		if err := usage.ValidateMetricType(mt); err != nil {
			return nil, fmt.Errorf("column %q: metric type: %w", col, err)
		}
		if prev, dup := limitCols[mt]; dup {
			return nil, fmt.Errorf("columns %q and %q both set the limit of %s", prev, col, mt)
		}
		limitCols[mt] = col
		lay.limits = append(lay.limits, limitColumn{index: i, metricType: mt})
	}
	for _, name := range []string{"tenant_id", "plan_id", "plan_name"} {
		if *required[name] < 0 {
			return nil, fmt.Errorf("missing required column %s (the query returns %s)", name, strings.Join(cols, ", "))
		}
	}
	return lay, nil
}

func (s *Source) metricType(suffix string) string {
	if i := slices.IndexFunc(s.metricTypes, func(mt string) bool { return strings.EqualFold(mt, suffix) }); i >= 0 {
		return s.metricTypes[i]
	}
	return suffix
}

// row is one checked row; reason says why it is skipped.
type row struct {
	tenantID, planID string
	reason           string
}

// row writes limits: 0 unlimited, negative unreadable.
func (l *layout) row(values []any, limits []int64, ids planIDs) (r row, planName string) {
	tenantID, ok := idString(values[l.tenantID])
	if !ok || (tenantID != "" && usage.ValidateID(usage.TenantID, tenantID) != nil) {
		return row{reason: reasonInvalidTenantID}, ""
	}
	planID, ok := ids.idString(values[l.planID])
	if !ok || (planID != "" && usage.ValidateID(usage.PlanID, planID) != nil) {
		return row{reason: reasonInvalidPlanID}, ""
	}
	switch {
	case tenantID == "" && planID == "":
		return row{reason: reasonEmptyRow}, ""
	case planID == "":
		return row{tenantID: tenantID}, ""
	case values[l.planName] == nil:
		return row{tenantID: tenantID, planID: planID, reason: reasonUnknownPlan}, ""
	}
	name, ok := values[l.planName].(string)
	if !ok || plans.ValidatePlanName(name) != nil {
		return row{tenantID: tenantID, planID: planID, reason: reasonInvalidPlanName}, ""
	}
	for i, c := range l.limits {
		limits[i] = limitValue(values[c.index])
	}
	return row{tenantID: tenantID, planID: planID}, name
}

// planIDs interns integer plan ids.
type planIDs map[int64]string

func (ids planIDs) idString(v any) (s string, ok bool) {
	n, isInt := v.(int64)
	if !isInt {
		return idString(v)
	}
	if s, ok := ids[n]; ok {
		return s, true
	}
	s = strconv.FormatInt(n, 10)
	ids[n] = s
	return s, true
}

func idString(v any) (s string, ok bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case int64:
		return strconv.FormatInt(v, 10), true
	case string:
		return v, v != ""
	case []byte:
		return string(v), len(v) > 0
	}
	return "", false
}

// Unreadable limits are coded negative, so disagreeing rows conflict.
const (
	negativeLimit   int64 = -1
	nonIntegerLimit int64 = -2
)

// limitValue returns a limit, 0 for none, or an unreadable limit's code.
func limitValue(v any) int64 {
	var n int64
	switch v := v.(type) {
	case nil:
		return 0
	case int64:
		n = v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v) || math.Abs(v) >= 1<<63 {
			return nonIntegerLimit
		}
		n = int64(v)
	case string:
		var err error
		if n, err = parseInteger(v); err != nil {
			return nonIntegerLimit
		}
	case []byte:
		return limitValue(string(v))
	default:
		return nonIntegerLimit
	}
	if n < 0 {
		return negativeLimit
	}
	return n
}

func unreadableReason(code int64) string {
	if code == negativeLimit {
		return reasonNegativeLimit
	}
	return reasonNonIntegerLimit
}

// parseInteger accepts a zero fraction ("5000.00").
func parseInteger(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if whole, frac, ok := strings.Cut(s, "."); ok && strings.Trim(frac, "0") == "" {
		s = whole
	}
	return strconv.ParseInt(s, 10, 64)
}

// builder resolves rows in any order.
type builder struct {
	lay     *layout
	rows    int
	plans   map[string]*planRows
	tenants *plans.Builder // a row per row naming a tenant
	invalid map[string]int
}

type planRows struct {
	name        string
	limits      []int64
	defined     bool
	conflicting bool
	invalid     bool // a row was skipped
	rows        int
}

// add adds a row read as values.
func (b *builder) add(r row, planName string, limits []int64, values []any) error {
	if r.reason != "" {
		b.invalid[r.reason]++
		if r.planID == "" {
			return nil
		}
		b.plan(r.planID).invalid = true
		if r.tenantID != "" {
			return b.keep(r, values)
		}
		return nil
	}
	if r.planID != "" {
		for _, v := range limits {
			if v < 0 {
				b.invalid[unreadableReason(v)]++
			}
		}
		if p := b.plan(r.planID); !p.defined {
			p.name, p.limits, p.defined = planName, slices.Clone(limits), true
		} else if p.name != planName || !slices.Equal(p.limits, limits) {
			p.conflicting = true
		}
	}
	return b.keep(r, values)
}

func (b *builder) keep(r row, values []any) error {
	b.rows++
	if r.planID != "" {
		b.plan(r.planID).rows++
	}
	if r.tenantID == "" {
		return nil
	}
	t := plans.Tenant{ID: r.tenantID, Plan: r.planID}
	if b.lay.tenantName >= 0 {
		t.Name = b.name(values[b.lay.tenantName])
	}
	return b.tenants.Add(t)
}

// name returns a tenant's valid name or ""; a bad one is counted.
func (b *builder) name(v any) string {
	var name string
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		name = v
	case []byte:
		name = string(v)
	default:
		b.invalid[reasonInvalidTenantName]++
		return ""
	}
	if name != "" && plans.ValidateTenantName(name) != nil {
		b.invalid[reasonInvalidTenantName]++
		return ""
	}
	return name
}

func (b *builder) plan(id string) *planRows {
	p, ok := b.plans[id]
	if !ok {
		p = &planRows{}
		b.plans[id] = p
	}
	return p
}

func (b *builder) catalog() *plans.Catalog {
	conflicting := 0
	// A tenant's rows must agree on the plan; its name is the first valid one.
	cat := b.tenants.Catalog(func(rows []plans.Tenant) (plans.Tenant, bool) {
		t := rows[0]
		for _, r := range rows[1:] {
			if r.Plan != t.Plan {
				conflicting += len(rows)
				return t, false
			}
			t.Name = cmp.Or(t.Name, r.Name)
		}
		return t, true
	})
	maps.Copy(cat.Invalid, b.invalid)
	if conflicting > 0 {
		cat.Invalid[reasonConflictingTenantPlan] += conflicting
	}
	// Bad plans are left out, not guessed at: their tenants' limits are unknown.
	for id, p := range b.plans {
		if p.conflicting && !p.invalid {
			cat.Invalid[reasonConflictingPlan] += p.rows
		}
		if p.conflicting || p.invalid {
			continue
		}
		plan := plans.Plan{ID: id, Name: p.name, Limits: plans.Limits{}}
		for i, c := range b.lay.limits {
			switch v := p.limits[i]; {
			case v > 0:
				plan.Limits[c.metricType] = v
			case v < 0:
				if plan.Unreadable == nil {
					plan.Unreadable = map[string]string{}
				}
				plan.Unreadable[c.metricType] = unreadableReason(v)
			}
		}
		cat.Plans[id] = plan
	}
	return cat
}
