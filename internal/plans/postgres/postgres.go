// Package postgres reads plans and tenant assignments from PostgreSQL with
// one query per Load.
//
// # The plans query
//
// The query returns one row per tenant, plus one row per plan that no
// tenant is on (so that such plans are still listed), with these columns:
//
//   - tenant_id: the tenant, any integer or text type. NULL: the row only
//     declares a plan.
//   - plan_id: the tenant's plan, any integer or text type. NULL: the tenant
//     has no active plan and default limits apply.
//   - plan_name: the plan's name; NULL when plan_id is set means the plan
//     does not exist (a LEFT JOIN found no plan row). Its tenants stay on
//     that plan id with no limits (Catalog.Tenants names a plan that
//     Catalog.Plans lacks), never on the default limits.
//   - limit_<metric_type>: one column per limit, named after the usage hash
//     field it limits, such as limit_messages or limit_whatsappSessions.
//     Any integer or numeric type; NULL or 0 means unlimited.
//
// Other columns are ignored. Column names are matched without regard to
// case, because PostgreSQL folds unquoted identifiers to lower case:
// "AS limit_whatsappSessions" arrives as limit_whatsappsessions. A limit
// column whose suffix matches a configured metric type (WithMetricTypes)
// in any case is mapped to that metric type's spelling; any other suffix is
// used as written. DefaultQuery quotes its aliases anyway.
//
// # Bad rows
//
// A row that cannot be used is skipped and counted in Catalog.Invalid under
// one of the Reason* names; it never fails the Load. A limit value that
// cannot be used (negative, not an integer) skips that limit only: the plan
// and its tenants stay, with the limit in Plan.Unreadable, so that nothing
// is derived from it and the tenants are not moved to the defaults. When
// the plan itself is bad (no plan row, a bad name, conflicting rows), the
// plan is left out and the row's tenant stays on that plan id, its limits
// unknown, again not on the defaults. A Load fails only
// when the query does, or when its columns cannot be used: a required one
// missing (ErrMissingColumn) or appearing twice, or two columns for one
// limit.
package postgres

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// DefaultQuery reads the reference schema (examples/schema.sql). The FULL
// OUTER JOIN lists plans that no tenant is on; COALESCE keeps the plan id of
// a tenant whose plan row is missing, so that it is counted as
// unknown_plan instead of passing for a tenant with no plan.
const DefaultQuery = `SELECT t.id                    AS tenant_id,
       COALESCE(p.id, t.plan_id) AS plan_id,
       p.name                  AS plan_name,
       p.max_messages          AS "limit_messages",
       p.max_storage_bytes     AS "limit_storage",
       p.max_users             AS "limit_users",
       p.max_whatsapp_sessions AS "limit_whatsappSessions"
FROM tenants t
FULL OUTER JOIN plans p ON p.id = t.plan_id`

// Reasons a row is skipped, the keys of Catalog.Invalid.
const (
	// ReasonEmptyRow: neither tenant_id nor plan_id is set.
	ReasonEmptyRow = "empty_row"
	// ReasonInvalidTenantID: tenant_id fails usage.ValidateID, or is
	// of a type that is neither integer nor text.
	ReasonInvalidTenantID = "invalid_tenant_id"
	// ReasonInvalidPlanID: plan_id fails the same rule.
	ReasonInvalidPlanID = "invalid_plan_id"
	// ReasonUnknownPlan: plan_id is set but plan_name is NULL (the plan's
	// row is missing). The tenant stays on the plan id, without limits.
	ReasonUnknownPlan = "unknown_plan"
	// ReasonInvalidPlanName: plan_name is empty, not printable UTF-8, or
	// too long (plans.ValidatePlanName).
	ReasonInvalidPlanName = "invalid_plan_name"
	// ReasonNegativeLimit: a limit column is negative. The limit is
	// unreadable (Plan.Unreadable); the row is kept.
	ReasonNegativeLimit = "negative_limit"
	// ReasonNonIntegerLimit: a limit column is not an integer that fits in
	// 64 bits (1.5, 'abc', true). The limit is unreadable; the row is kept.
	ReasonNonIntegerLimit = "non_integer_limit"
	// ReasonConflictingPlan: rows give one plan id different names or
	// limits. The plan is left out rather than guessed at; its tenants stay
	// on it, without limits.
	ReasonConflictingPlan = "conflicting_plan"
	// ReasonConflictingTenantPlan: rows put one tenant on different plans
	// (or on a plan and on none). The tenant is left out; the plans those
	// rows define are still listed.
	ReasonConflictingTenantPlan = "conflicting_tenant_plan"
)

// Required columns of the plans query.
const (
	ColumnTenantID = "tenant_id"
	ColumnPlanID   = "plan_id"
	ColumnPlanName = "plan_name"
	// LimitPrefix starts the name of every limit column.
	LimitPrefix = "limit_"
)

// ErrMissingColumn is wrapped by Load's error when the query lacks one of
// the required columns.
var ErrMissingColumn = errors.New("missing required column")

// Source is a plans.Source over a PostgreSQL database.
type Source struct {
	db          *sql.DB
	query       string
	metricTypes []string
	lastRows    atomic.Int64 // rows of the last load, to size the next one's
	// last is the last successful load's result, to recognise the next
	// one unchanged (see Load); nil before one.
	last atomic.Pointer[result]
}

// Option configures a Source.
type Option func(*Source)

// WithQuery replaces DefaultQuery; see the package documentation for the
// columns it must return. An empty query keeps the default.
func WithQuery(q string) Option {
	return func(s *Source) {
		if strings.TrimSpace(q) != "" {
			s.query = q
		}
	}
}

// WithMetricTypes sets the metric types that limit columns are matched
// against, to recover their spelling from a lower-cased column name. An
// empty list keeps usage.DefaultMetricTypes.
func WithMetricTypes(types []string) Option {
	return func(s *Source) {
		if len(types) > 0 {
			s.metricTypes = append([]string(nil), types...)
		}
	}
}

// New returns a Source reading db.
func New(db *sql.DB, opts ...Option) *Source {
	s := &Source{db: db, query: DefaultQuery, metricTypes: usage.MetricTypeNames(usage.DefaultMetricTypes)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open prepares a connection pool for dsn (a postgres:// URL or a
// key=value string) without connecting: the exporter must start, and
// report billing_postgres_up 0, while the database is down. Errors never
// contain the DSN's password.
func Open(dsn string) (*sql.DB, error) {
	return OpenFunc(func() (string, error) { return dsn, nil })
}

// OpenFunc is Open with the DSN asked of dsn at each new connection, so
// that a DSN file rotated in place (a new password) is used from the next
// connection the pool opens, without a restart. The DSN is checked now;
// one that has become unusable fails that connection, and the scrape
// reports billing_postgres_up 0.
func OpenFunc(dsn func() (string, error)) (*sql.DB, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg, stdlib.OptionBeforeConnect(func(_ context.Context, cc *pgx.ConnConfig) error {
		cfg, err := parseDSN(dsn)
		if err != nil {
			return err
		}
		*cc = *cfg
		return nil
	}))
	// One query per scrape, and concurrent scrapes share a read: a couple
	// of connections is plenty, and the database's connection limit is
	// shared with the application.
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(1)
	// Recycle connections so that a failover, a DNS change or a rotated
	// DSN is picked up.
	db.SetConnMaxLifetime(10 * time.Minute)
	return db, nil
}

// CheckDSN says whether dsn parses, in an error that never contains its
// password.
func CheckDSN(dsn string) error {
	_, err := parseDSN(func() (string, error) { return dsn, nil })
	return err
}

func parseDSN(dsn func() (string, error)) (*pgx.ConnConfig, error) {
	d, err := dsn()
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	cfg, err := pgx.ParseConfig(d)
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %s", redact(err.Error(), d))
	}
	return cfg, nil
}

// Load runs the plans query once and builds the catalog. The context's
// deadline bounds the whole query, rows included.
//
// When the query returns exactly the rows of the last load, in the same
// order (PostgreSQL returns an unchanged table in the same order, barring
// a synchronized scan that starts mid-table), Load returns the last
// catalog itself, building nothing: with a row per tenant and a query per
// scrape, a catalog of a million tenants built anew each time was the
// largest allocation of a scrape, and its copy next to the last one the
// largest part of the exporter's peak memory. The rows are compared as
// they arrive; from the first that differs, the catalog is built as
// always, the rows before it replayed from the last load. A catalog is
// never modified, so handing out the same one again is safe.
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
	prev := s.last.Load()
	if prev != nil && !slices.Equal(prev.columns, cols) {
		prev = nil
	}
	values := make([]any, len(cols))
	dest := make([]any, len(cols))
	for i := range values {
		dest[i] = &values[i]
	}
	limits := make([]int64, len(lay.limits)) // reused: most rows repeat their plan's limits
	ids := planIDs{}
	var b *builder // nil while every row so far is the last load's
	n := 0         // rows so far
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("plans query: %w", err)
		}
		r, name := lay.row(values, limits, ids)
		if b == nil && prev.same(n, r, name, limits) {
			n++
			continue
		}
		if b == nil {
			b = s.startBuilding(lay, prev, n)
		}
		b.add(r, name, limits)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("plans query: %w", err)
	}
	if b == nil && prev != nil && n == len(prev.tenants) {
		return prev.catalog, nil
	}
	if b == nil { // the last load's rows, fewer of them
		b = s.startBuilding(lay, prev, n)
	}
	s.lastRows.Store(int64(b.rows))
	cat := b.catalog()
	s.last.Store(b.rec.result(cols, cat))
	return cat, nil
}

// startBuilding returns a builder holding the first n rows of prev (all of
// them equal to this load's so far).
func (s *Source) startBuilding(lay *layout, prev *result, n int) *builder {
	b := newBuilder(lay, int(s.lastRows.Load()))
	for i := range n {
		c := &prev.classes[prev.rowClass[i]]
		b.add(row{tenantID: prev.tenants[i], planID: c.planID, reason: c.reason}, c.planName, c.limits)
	}
	return b
}

// result is one load's rows, as checked, in the order they came, and the
// catalog built from them: what the next load compares its rows with.
// Rows are few kinds (one per plan, and the bad ones), so a row is its
// tenant id and the index of its kind: 18 bytes a row, the tenant ids
// shared with the catalog's keys.
type result struct {
	columns  []string
	catalog  *plans.Catalog
	tenants  []string
	rowClass []uint16
	classes  []rowClass
}

// rowClass is what rows other than their tenant id say: the plan, its
// name and limits (as row gives them), and the reason a row is skipped.
type rowClass struct {
	planID, planName, reason string
	limits                   []int64
}

func (c *rowClass) is(r row, name string, limits []int64) bool {
	return c.planID == r.planID && c.planName == name && c.reason == r.reason && slices.Equal(c.limits, limits)
}

// same reports whether row n of this load is row n of the result p (false
// for a nil p).
func (p *result) same(n int, r row, name string, limits []int64) bool {
	return p != nil && n < len(p.tenants) && p.tenants[n] == r.tenantID && p.classes[p.rowClass[n]].is(r, name, limits)
}

// maxRowClasses bounds the kinds of rows a result keeps (a rowClass index
// is a uint16). Past it (hostile data: a bad plan name per row) nothing is
// kept, and the next load builds its catalog as always.
const maxRowClasses = 1 << 16

// recorder keeps a load's rows as a result.
type recorder struct {
	tenants  []string
	rowClass []uint16
	classes  []rowClass
	index    map[string]uint16 // by classKey
	key      []byte            // classKey's buffer, reused
	full     bool              // over maxRowClasses: nothing is kept
}

func newRecorder(hint int) *recorder {
	return &recorder{tenants: make([]string, 0, hint), rowClass: make([]uint16, 0, hint), index: map[string]uint16{}}
}

func (rc *recorder) add(r row, name string, limits []int64) {
	if rc.full {
		return
	}
	var i uint16
	switch last := len(rc.rowClass) - 1; {
	case last >= 0 && rc.classes[rc.rowClass[last]].is(r, name, limits):
		i = rc.rowClass[last] // the common case: runs of one plan
	default:
		rc.key = classKey(rc.key[:0], r, name, limits)
		var ok bool
		if i, ok = rc.index[string(rc.key)]; !ok {
			if len(rc.classes) == maxRowClasses {
				rc.full, rc.tenants, rc.rowClass, rc.classes, rc.index = true, nil, nil, nil, nil
				return
			}
			i = uint16(len(rc.classes))
			rc.classes = append(rc.classes, rowClass{planID: r.planID, planName: name, reason: r.reason, limits: slices.Clone(limits)})
			rc.index[string(rc.key)] = i
		}
	}
	rc.tenants = append(rc.tenants, r.tenantID)
	rc.rowClass = append(rc.rowClass, i)
}

// classKey appends the key of a row's class to buf: its strings, each
// length-prefixed so that no two classes share a key, then its limits.
func classKey(buf []byte, r row, name string, limits []int64) []byte {
	for _, s := range [...]string{r.planID, name, r.reason} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for _, v := range limits {
		buf = binary.AppendVarint(buf, v)
	}
	return buf
}

// result returns what was recorded, nil when too many kinds of rows were.
func (rc *recorder) result(cols []string, cat *plans.Catalog) *result {
	if rc.full {
		return nil
	}
	return &result{columns: slices.Clone(cols), catalog: cat, tenants: rc.tenants, rowClass: rc.rowClass, classes: rc.classes}
}

// layout says where each column of the result is.
type layout struct {
	tenantID, planID, planName int
	limits                     []limitColumn
}

type limitColumn struct {
	index      int
	metricType string
}

func (s *Source) layout(cols []string) (*layout, error) {
	lay := &layout{tenantID: -1, planID: -1, planName: -1}
	required := map[string]*int{ColumnTenantID: &lay.tenantID, ColumnPlanID: &lay.planID, ColumnPlanName: &lay.planName}
	limitCols := map[string]string{} // metric type -> column that set it
	for i, col := range cols {
		lower := strings.ToLower(col)
		if idx, ok := required[lower]; ok {
			if *idx >= 0 {
				return nil, fmt.Errorf("column %s appears twice", lower)
			}
			*idx = i
			continue
		}
		if !strings.HasPrefix(lower, LimitPrefix) {
			continue
		}
		mt := s.metricType(col[len(LimitPrefix):])
		if err := usage.ValidateMetricType(mt); err != nil {
			return nil, fmt.Errorf("column %q: metric type: %w", col, err)
		}
		if prev, dup := limitCols[mt]; dup {
			return nil, fmt.Errorf("columns %q and %q both set the limit of %s", prev, col, mt)
		}
		limitCols[mt] = col
		lay.limits = append(lay.limits, limitColumn{index: i, metricType: mt})
	}
	for _, name := range []string{ColumnTenantID, ColumnPlanID, ColumnPlanName} {
		if *required[name] < 0 {
			return nil, fmt.Errorf("%w: %s (the query returns %s)", ErrMissingColumn, name, strings.Join(cols, ", "))
		}
	}
	return lay, nil
}

// metricType maps a limit column's suffix to the configured metric type it
// matches in any case, else keeps it as written.
func (s *Source) metricType(suffix string) string {
	for _, mt := range s.metricTypes {
		if strings.EqualFold(mt, suffix) {
			return mt
		}
	}
	return suffix
}

// row is one result row, checked on its own; reason is set when it must be
// skipped. A row whose plan is bad (a missing plan row, a bad name) keeps
// its tenant and plan ids: the tenant stays on that plan, whose
// limits are then unknown, rather than falling to the default limits.
type row struct {
	tenantID, planID string
	reason           string
}

// row checks one result row. The plan's name is returned and its limits
// are written to limits (one per layout limit column, 0 for unlimited, a
// negative code for an unreadable one, see unreadableLimit) rather than
// into a map per row: with one row per tenant, the same few plans' limits
// arrive a hundred thousand times.
func (l *layout) row(values []any, limits []int64, ids planIDs) (r row, planName string) {
	tenantID, ok := idString(values[l.tenantID])
	if !ok || (tenantID != "" && usage.ValidateID(usage.TenantID, tenantID) != nil) {
		return row{reason: ReasonInvalidTenantID}, ""
	}
	planID, ok := ids.idString(values[l.planID])
	if !ok || (planID != "" && usage.ValidateID(usage.PlanID, planID) != nil) {
		return row{reason: ReasonInvalidPlanID}, ""
	}
	switch {
	case tenantID == "" && planID == "":
		return row{reason: ReasonEmptyRow}, ""
	case planID == "":
		return row{tenantID: tenantID}, ""
	case values[l.planName] == nil:
		// The plan's row is missing (a tenant whose plan was deleted, with
		// no foreign key): the tenant stays on that plan id.
		return row{tenantID: tenantID, planID: planID, reason: ReasonUnknownPlan}, ""
	}
	name, ok := values[l.planName].(string)
	if !ok || plans.ValidatePlanName(name) != nil {
		return row{tenantID: tenantID, planID: planID, reason: ReasonInvalidPlanName}, ""
	}
	for i, c := range l.limits {
		v, reason := limitValue(values[c.index])
		if reason != "" {
			v = unreadableLimit[reason]
		}
		limits[i] = v
	}
	return row{tenantID: tenantID, planID: planID}, name
}

// planIDs holds the text of the integer plan ids seen so far: a hundred
// thousand rows name the same few plans, and each would otherwise format
// its own copy.
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

// limitValue converts a limit column; 0 means unlimited. pgx returns
// integer columns as int64, numeric and text as string, floating point as
// float64.
func limitValue(v any) (int64, string) {
	var n int64
	switch v := v.(type) {
	case nil:
		return 0, ""
	case int64:
		n = v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v) || math.Abs(v) >= 1<<63 {
			return 0, ReasonNonIntegerLimit
		}
		n = int64(v)
	case string:
		var err error
		if n, err = parseInteger(v); err != nil {
			return 0, ReasonNonIntegerLimit
		}
	case []byte:
		var err error
		if n, err = parseInteger(string(v)); err != nil {
			return 0, ReasonNonIntegerLimit
		}
	default:
		return 0, ReasonNonIntegerLimit
	}
	if n < 0 {
		return 0, ReasonNegativeLimit
	}
	return n, ""
}

// unreadableLimit codes the reason a limit value is unreadable, as the
// negative value it is kept as in a row's limits: rows of one plan that
// disagree on it are then a conflict like any other difference.
var unreadableLimit = map[string]int64{ReasonNegativeLimit: -1, ReasonNonIntegerLimit: -2}

func unreadableReason(code int64) string {
	if code == unreadableLimit[ReasonNegativeLimit] {
		return ReasonNegativeLimit
	}
	return ReasonNonIntegerLimit
}

// parseInteger accepts an integer in decimal text, also as numeric prints
// one with a scale ("5000.00").
func parseInteger(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if whole, frac, ok := strings.Cut(s, "."); ok && strings.Trim(frac, "0") == "" {
		s = whole
	}
	return strconv.ParseInt(s, 10, 64)
}

// builder resolves checked rows into a catalog as they arrive, so that the
// result does not depend on row order and no row is kept: with one row per
// tenant, a list of the rows was tens of megabytes per load at a million
// tenants, on top of the catalog itself, on every scrape.
type builder struct {
	lay   *layout
	rows  int // rows kept: valid ones, and those of a bad plan with a tenant
	plans map[string]*planRows
	// tenants maps each tenant to the plan of its first row; conflicting
	// holds those a later row put on another plan, and extraRows counts
	// the rows after the first of tenants with several (few, if any).
	tenants     map[string]string
	conflicting map[string]bool
	extraRows   map[string]int
	invalid     map[string]int
	rec         *recorder // every row, for the next load to compare with
}

// planRows is what the rows say about one plan: the name and limits of the
// first row, and whether a later row disagreed.
type planRows struct {
	name        string
	limits      []int64
	defined     bool // a valid row gave name and limits
	conflicting bool
	invalid     bool // a row of the plan is missing its plan row or has a bad name
	rows        int  // rows kept that name the plan
}

// newBuilder returns a builder for about rows rows (the last load's count:
// growing a map of 100k entries row by row costs more than the query).
func newBuilder(lay *layout, rows int) *builder {
	return &builder{lay: lay, plans: map[string]*planRows{}, tenants: make(map[string]string, rows),
		invalid: map[string]int{}, rec: newRecorder(rows)}
}

func (b *builder) add(r row, planName string, limits []int64) {
	b.rec.add(r, planName, limits)
	if r.reason != "" {
		b.invalid[r.reason]++
		if r.planID == "" {
			return // nothing to keep
		}
		// The plan is left out; its tenant stays on it.
		b.plan(r.planID).invalid = true
		if r.tenantID != "" {
			b.keep(r)
		}
		return
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
	b.keep(r)
}

// keep counts a row kept to its plan and maps its tenant. A tenant that
// rows give different plans is marked, to be left out with all its rows.
func (b *builder) keep(r row) {
	b.rows++
	if r.planID != "" {
		b.plan(r.planID).rows++
	}
	if r.tenantID == "" {
		return
	}
	p, seen := b.tenants[r.tenantID]
	if !seen {
		b.tenants[r.tenantID] = r.planID
		return
	}
	if b.extraRows == nil {
		b.extraRows, b.conflicting = map[string]int{}, map[string]bool{}
	}
	b.extraRows[r.tenantID]++
	if p != r.planID {
		b.conflicting[r.tenantID] = true
	}
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
	cat := plans.NewCatalog()
	for reason, n := range b.invalid {
		cat.Invalid[reason] = n
	}
	// A plan that rows give different names or limits is left out rather
	// than guessed at, and so is one with a missing or bad row: their
	// tenants stay on them, with no limits stated (they are not tenants
	// without a plan, so the default limits would be wrong too). Every
	// row of a conflicting plan is counted.
	for id, p := range b.plans {
		if p.conflicting && !p.invalid {
			cat.Invalid[ReasonConflictingPlan] += p.rows
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
	// A tenant that rows give different plans is left out with all its
	// rows, rather than guessed at.
	for id := range b.conflicting {
		cat.Invalid[ReasonConflictingTenantPlan] += 1 + b.extraRows[id]
		delete(b.tenants, id)
	}
	cat.Tenants = b.tenants
	return cat
}

// redact removes the password of dsn from msg. pgx already redacts
// passwords in its parse errors; this does not rely on it.
func redact(msg, dsn string) string {
	for _, pw := range passwords(dsn) {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

var keywordPasswordRE = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// passwords returns every spelling of the password dsn may hold: in URL
// form raw and unescaped, in key=value form quoted and unquoted.
func passwords(dsn string) []string {
	var pws []string
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				pws = append(pws, pw)
				if u, err := url.PathUnescape(pw); err == nil {
					pws = append(pws, u)
				}
			}
		}
	}
	for _, m := range keywordPasswordRE.FindAllStringSubmatch(dsn, -1) {
		pws = append(pws, m[1], strings.Trim(m[1], "'"))
	}
	// Longest first, so that a password containing another is replaced
	// whole.
	sort.Slice(pws, func(i, j int) bool { return len(pws[i]) > len(pws[j]) })
	return pws
}
