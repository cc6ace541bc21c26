package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

const (
	schemaFile = "../../../examples/schema.sql"
	sampleFile = "../../../examples/sample-data.sql"
)

// sampleCatalog is examples/sample-data.sql as a catalog.
func sampleCatalog() *testserver.CatalogView {
	return &testserver.CatalogView{
		Plans: map[string]plans.Plan{
			"1": {ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "storage": 1073741824, "users": 5, "whatsappSessions": 1}},
			"2": {ID: "2", Name: "pro", Limits: plans.Limits{"messages": 50000, "storage": 10737418240, "users": 25, "whatsappSessions": 5}},
			"3": {ID: "3", Name: "enterprise", Limits: plans.Limits{"storage": 107374182400, "users": 200, "whatsappSessions": 20}},
			"4": {ID: "4", Name: "trial", Limits: plans.Limits{"messages": 500, "storage": 104857600, "users": 2, "whatsappSessions": 1}},
		},
		Tenants: map[string]string{"1": "1", "2": "1", "3": "", "4": "2", "5": "2", "6": "3"},
		Names: map[string]string{"1": "Acme Ltda", "2": "Padaria Pão Quente", "3": "Churned Co", "4": "Globex",
			"5": "Initech", "6": "Umbrella"},
		Invalid: map[string]int{},
	}
}

var databases atomic.Int64

// database creates a fresh database on pg, runs the SQL files and then the
// statements in it, and returns an open handle.
func database(t *testing.T, pg *testserver.Postgres, files []string, stmts string) *sql.DB {
	t.Helper()
	// Subtest names are too long and too varied for database names.
	dsn := pg.CreateDatabase(fmt.Sprintf("test_%d", databases.Add(1)))
	pg.ExecFiles(dsn, files...)
	if stmts != "" {
		pg.ExecDSN(dsn, stmts)
	}
	db, err := postgres.Open("dsn", func() (string, error) { return dsn, nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func load(t *testing.T, src *postgres.Source) *plans.Catalog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, err := src.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cat
}

func TestLoad(t *testing.T) {
	pg := testserver.StartPostgres(t)
	schema := []string{schemaFile}
	tests := []struct {
		name  string
		files []string
		sql   string
		opts  []postgres.Option
		want  *testserver.CatalogView
	}{
		{
			name:  "default query on sample data",
			files: []string{schemaFile, sampleFile},
			want:  sampleCatalog(),
		},
		{
			name:  "plans with no tenants",
			files: schema,
			sql: `INSERT INTO plans VALUES (1, 'starter', 5000, NULL, 5, 1), (2, 'pro', 50000, NULL, 25, 5);
			      INSERT INTO tenants VALUES (10, 'only tenant', 2)`,
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "users": 5, "whatsappSessions": 1}},
					"2": {ID: "2", Name: "pro", Limits: plans.Limits{"messages": 50000, "users": 25, "whatsappSessions": 5}},
				},
				Tenants: map[string]string{"10": "2"},
				Invalid: map[string]int{},
			},
		},
		{
			name:  "tenant names: hostile ones counted and left out, the tenant kept",
			files: schema,
			sql: `INSERT INTO plans VALUES (1, 'starter', 5000, NULL, 5, 1);
			      INSERT INTO tenants VALUES (1, 'Padaria Estrela', 1), (2, E'bell\u0007', 1), (3, NULL, 1), (4, '', NULL),
			        (5, repeat('x', 257), 1), (6, '<script>alert(1)</script>', NULL)`,
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "users": 5, "whatsappSessions": 1}}},
				Tenants: map[string]string{"1": "1", "2": "1", "3": "1", "4": "", "5": "1", "6": ""},
				Names:   map[string]string{"1": "Padaria Estrela", "6": "<script>alert(1)</script>"},
				Invalid: map[string]int{"invalid_tenant_name": 2},
			},
		},
		{
			name: "a query without tenant_name has no names",
			opts: []postgres.Option{postgres.WithQuery(`SELECT 1 AS tenant_id, 1 AS plan_id, 'p' AS plan_name, 10 AS limit_users`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "p", Limits: plans.Limits{"users": 10}}},
				Tenants: map[string]string{"1": "1"},
				Names:   map[string]string{},
				Invalid: map[string]int{},
			},
		},
		{
			name: "a name of another type is counted",
			opts: []postgres.Option{postgres.WithQuery(`SELECT 1 AS tenant_id, 42 AS tenant_name, NULL AS plan_id, NULL AS plan_name`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{},
				Tenants: map[string]string{"1": ""},
				Names:   map[string]string{},
				Invalid: map[string]int{"invalid_tenant_name": 1},
			},
		},
		{
			name: "a tenant on several rows keeps its first valid name; rows that disagree on the plan drop it",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT * FROM (VALUES
					('b', NULL,       '1', 'p'),
					('a', 'First',    '1', 'p'),
					('b', E'bad\u0007', '1', 'p'),
					('b', 'Named',    '1', 'p'),
					('a', 'Second',   '1', 'p'),
					('c', 'Gone',     '1', 'p'),
					('c', 'Gone',     '2', 'p')
				) AS v(tenant_id, tenant_name, plan_id, plan_name)`)},
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{"1": {ID: "1", Name: "p", Limits: plans.Limits{}},
					"2": {ID: "2", Name: "p", Limits: plans.Limits{}}},
				Tenants: map[string]string{"a": "1", "b": "1"},
				Names:   map[string]string{"a": "First", "b": "Named"},
				Invalid: map[string]int{"invalid_tenant_name": 1, "conflicting_tenant_plan": 2},
			},
		},
		{
			name:  "no tenants at all",
			files: schema,
			sql:   `INSERT INTO plans VALUES (7, 'lonely', 1, 2, 3, 4)`,
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"7": {ID: "7", Name: "lonely", Limits: plans.Limits{"messages": 1, "storage": 2, "users": 3, "whatsappSessions": 4}}},
				Tenants: map[string]string{},
				Invalid: map[string]int{},
			},
		},
		{
			name:  "NULL and 0 limits are unlimited",
			files: schema,
			sql: `INSERT INTO plans VALUES (1, 'nulls', NULL, NULL, NULL, NULL), (2, 'zeros', 0, 0, 0, 0), (3, 'mixed', 0, NULL, 7, 0);
			      INSERT INTO tenants VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)`,
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: "nulls", Limits: plans.Limits{}},
					"2": {ID: "2", Name: "zeros", Limits: plans.Limits{}},
					"3": {ID: "3", Name: "mixed", Limits: plans.Limits{"users": 7}},
				},
				Tenants: map[string]string{"1": "1", "2": "2", "3": "3"},
				Invalid: map[string]int{},
			},
		},
		{
			// The plan and its tenants stay (never moved to the defaults);
			// only the bad limit is unreadable, counted once per row.
			name:  "negative limit is unreadable, counted, and the plan's other limits kept",
			files: schema,
			sql: `INSERT INTO plans VALUES (1, 'broken', 5000, -1, 5, 1), (2, 'fine', 10, 20, 30, 40), (3, 'broken unused', -5, NULL, NULL, NULL);
			      INSERT INTO tenants VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 2), (4, 'd', NULL)`,
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: "broken", Limits: plans.Limits{"messages": 5000, "users": 5, "whatsappSessions": 1},
						Unreadable: map[string]string{"storage": "negative_limit"}},
					"2": {ID: "2", Name: "fine", Limits: plans.Limits{"messages": 10, "storage": 20, "users": 30, "whatsappSessions": 40}},
					"3": {ID: "3", Name: "broken unused", Limits: plans.Limits{}, Unreadable: map[string]string{"messages": "negative_limit"}},
				},
				Tenants: map[string]string{"1": "1", "2": "1", "3": "2", "4": ""},
				Invalid: map[string]int{"negative_limit": 3},
			},
		},
		{
			name:  "plan names with quotes and unicode",
			files: schema,
			sql: `INSERT INTO plans VALUES (1, 'O''Brien "pro"', 1, NULL, NULL, NULL), (2, 'plano básico ✓', 2, NULL, NULL, NULL);
			      INSERT INTO tenants VALUES (1, 'a', 1), (2, 'b', 2)`,
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: `O'Brien "pro"`, Limits: plans.Limits{"messages": 1}},
					"2": {ID: "2", Name: "plano básico ✓", Limits: plans.Limits{"messages": 2}},
				},
				Tenants: map[string]string{"1": "1", "2": "2"},
				Invalid: map[string]int{},
			},
		},
		{
			name:  "unquoted limit_whatsappSessions folds to lower case and still maps",
			files: []string{schemaFile, sampleFile},
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT t.id AS tenant_id, p.id AS plan_id, p.name AS plan_name,
				       p.max_whatsapp_sessions AS limit_whatsappSessions,
				       p.max_users AS LIMIT_USERS
				FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = 1`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "starter", Limits: plans.Limits{"whatsappSessions": 1, "users": 5}}},
				Tenants: map[string]string{"1": "1"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "extra metric type column, quoted",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT 1 AS tenant_id, 1 AS plan_id, 'api' AS plan_name, 100 AS limit_messages, 250 AS "limit_apiCalls"`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "api", Limits: plans.Limits{"messages": 100, "apiCalls": 250}}},
				Tenants: map[string]string{"1": "1"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "extra metric type column, unquoted but configured",
			opts: []postgres.Option{
				postgres.WithQuery(`SELECT 1 AS tenant_id, 1 AS plan_id, 'api' AS plan_name, 250 AS limit_apiCalls`),
				postgres.WithMetricTypes([]string{"messages", "apiCalls"}),
			},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "api", Limits: plans.Limits{"apiCalls": 250}}},
				Tenants: map[string]string{"1": "1"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "extra metric type column, unquoted and not configured, keeps the folded name",
			opts: []postgres.Option{postgres.WithQuery(`SELECT 1 AS tenant_id, 1 AS plan_id, 'api' AS plan_name, 250 AS limit_apiCalls`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "api", Limits: plans.Limits{"apicalls": 250}}},
				Tenants: map[string]string{"1": "1"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "id and limit types: int2, int4, text, numeric, float",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT * FROM (VALUES
					(1::int2,            'p1'::text,  'one', 5000::numeric,        2.0::float8,  NULL::text),
					(2::int2,            'p1',        'one', 5000.00,              2.0,          NULL),
					(NULL,               '42',        'two', 7,                    NULL,         '9'),
					(NULL,               'p3',        'three', 0,                  0,            '0')
				) AS v(tenant_id, plan_id, plan_name, limit_messages, limit_users, limit_storage)`)},
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"p1": {ID: "p1", Name: "one", Limits: plans.Limits{"messages": 5000, "users": 2}},
					"42": {ID: "42", Name: "two", Limits: plans.Limits{"messages": 7, "storage": 9}},
					"p3": {ID: "p3", Name: "three", Limits: plans.Limits{}},
				},
				Tenants: map[string]string{"1": "p1", "2": "p1"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "text tenant ids, and integer ids as decimal text",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT * FROM (VALUES
					('acme'::text, 9000000000::bigint, 'big'),
					('t-2',        9000000000,         'big'),
					('-7',         NULL,               NULL)
				) AS v(tenant_id, plan_id, plan_name)`)},
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"9000000000": {ID: "9000000000", Name: "big", Limits: plans.Limits{}}},
				Tenants: map[string]string{"acme": "9000000000", "t-2": "9000000000", "-7": ""},
				Invalid: map[string]int{},
			},
		},
		{
			name: "bad rows are skipped and counted by reason",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT * FROM (VALUES
					('ok',      '1',  'good',  10::numeric),
					('ok2',     '1',  'good',  10),
					('ok2',     '1',  'good',  10),     -- the same row twice is no conflict
					('a*b',     '1',  'good',  10),     -- glob character
					('',        '1',  'good',  10),     -- empty tenant id
					('t1',      '',   'x',     10),     -- empty plan id
					('t2',      '99', NULL,    10),     -- plan row missing
					('t3',      '2',  '',      10),     -- empty plan name
					('t4',      '3',  'frac',  1.5),
					('t5',      '4',  'neg',   -3),
					(NULL,      NULL, 'x',     10),     -- says nothing
					('t6',      '5',  'five',  1),
					('t6',      '6',  'six',   1),      -- t6 on two plans
					('t6',      '5',  'five',  1),      -- in three rows: all three counted
					('t11',     '1',  'good',  10),
					('t11',     '1',  'good',  10),     -- the same row twice: no conflict
					('t7',      '5',  'five',  1),
					('t7',      NULL, NULL,    NULL),   -- t7 on a plan and on none
					('t8',      '7',  'seven', 1),
					('t9',      '7',  'SEVEN', 1),      -- plan 7 named two ways
					(NULL,      '8',  'eight', 1),
					('t10',     '8',  'eight', 2)       -- plan 8 with two limits
				) AS v(tenant_id, plan_id, plan_name, limit_messages)`)},
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: "good", Limits: plans.Limits{"messages": 10}},
					"3": {ID: "3", Name: "frac", Limits: plans.Limits{}, Unreadable: map[string]string{"messages": "non_integer_limit"}},
					"4": {ID: "4", Name: "neg", Limits: plans.Limits{}, Unreadable: map[string]string{"messages": "negative_limit"}},
					"5": {ID: "5", Name: "five", Limits: plans.Limits{"messages": 1}},
					"6": {ID: "6", Name: "six", Limits: plans.Limits{"messages": 1}},
				},
				// A tenant whose plan row is missing, badly named or
				// conflicting stays on that plan id (the plan has no
				// entry): it is not a tenant without a plan.
				Tenants: map[string]string{"ok": "1", "ok2": "1", "t2": "99", "t3": "2", "t4": "3", "t5": "4", "t8": "7", "t9": "7", "t10": "8", "t11": "1"},
				Invalid: map[string]int{
					"invalid_tenant_id":       2,
					"invalid_plan_id":         1,
					"unknown_plan":            1,
					"invalid_plan_name":       1,
					"non_integer_limit":       1,
					"negative_limit":          1,
					"empty_row":               1,
					"conflicting_tenant_plan": 5,
					"conflicting_plan":        4,
				},
			},
		},
		{
			name: "non-integer limits of other types",
			opts: []postgres.Option{postgres.WithQuery(`
				SELECT * FROM (VALUES
					(1, 1, 'text',  'abc'::text, NULL::float8, NULL::bool),
					(2, 2, 'float', NULL,        2.5,          NULL),
					(3, 3, 'bool',  NULL,        NULL,         true),
					(4, 4, 'huge',  '99999999999999999999', NULL, NULL),
					(5, 5, 'nan',   NULL,        'NaN',        NULL)
				) AS v(tenant_id, plan_id, plan_name, limit_messages, limit_storage, limit_users)`)},
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"1": {ID: "1", Name: "text", Limits: plans.Limits{}, Unreadable: map[string]string{"messages": "non_integer_limit"}},
					"2": {ID: "2", Name: "float", Limits: plans.Limits{}, Unreadable: map[string]string{"storage": "non_integer_limit"}},
					"3": {ID: "3", Name: "bool", Limits: plans.Limits{}, Unreadable: map[string]string{"users": "non_integer_limit"}},
					"4": {ID: "4", Name: "huge", Limits: plans.Limits{}, Unreadable: map[string]string{"messages": "non_integer_limit"}},
					"5": {ID: "5", Name: "nan", Limits: plans.Limits{}, Unreadable: map[string]string{"storage": "non_integer_limit"}},
				},
				Tenants: map[string]string{"1": "1", "2": "2", "3": "3", "4": "4", "5": "5"},
				Invalid: map[string]int{"non_integer_limit": 5},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := database(t, pg, tt.files, tt.sql)
			got := testserver.ViewCatalog(load(t, postgres.New(db, tt.opts...)))
			if tt.want.Names == nil { // a case about the rest
				got.Names = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("catalog:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadQueryErrors(t *testing.T) {
	pg := testserver.StartPostgres(t)
	db := database(t, pg, []string{schemaFile, sampleFile}, "")
	tests := []struct {
		name      string
		query     string
		missing   bool   // the error says "missing required column"
		wantInErr string // substring of the error
	}{
		{"tenant_id missing", `SELECT 1 AS plan_id, 'x' AS plan_name`, true, "tenant_id"},
		{"plan_id missing", `SELECT 1 AS tenant_id, 'x' AS plan_name, 1 AS limit_messages`, true, "plan_id"},
		{"plan_name missing", `SELECT id AS tenant_id, plan_id FROM tenants`, true, "plan_name"},
		{"limit column twice", `SELECT 1 AS tenant_id, 1 AS plan_id, 'x' AS plan_name, 1 AS limit_messages, 2 AS "LIMIT_MESSAGES"`, false, "both set the limit of messages"},
		{"required column twice", `SELECT 1 AS tenant_id, 2 AS "TENANT_ID", 1 AS plan_id, 'x' AS plan_name`, false, "tenant_id appears twice"},
		{"limit column with no metric type", `SELECT 1 AS tenant_id, 1 AS plan_id, 'x' AS plan_name, 1 AS limit_`, false, `column "limit_"`},
		{"SQL error", `SELECT * FROM no_such_table`, false, "no_such_table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := postgres.New(db, postgres.WithQuery(tt.query)).Load(context.Background())
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.HasPrefix(err.Error(), "plans query: ") || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q: want prefix %q and %q in it", err, "plans query: ", tt.wantInErr)
			}
			if got := strings.Contains(err.Error(), "missing required column "+tt.wantInErr); got != tt.missing {
				t.Errorf("missing column error = %v, want %v (%v)", got, tt.missing, err)
			}
		})
	}
}

func TestLoadHonoursDeadline(t *testing.T) {
	pg := testserver.StartPostgres(t)
	db := database(t, pg, nil, "")
	src := postgres.New(db, postgres.WithQuery(`SELECT 1 AS tenant_id, 1 AS plan_id, 'x' AS plan_name FROM pg_sleep(30)`))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Load(ctx)
	if err == nil {
		t.Fatal("Load succeeded despite the deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	// Not a timing assertion: the query sleeps 30s, so anything well short
	// of that shows the deadline, not the query, ended the Load.
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("Load returned after %v; the deadline was not honoured", elapsed)
	}

	// The pool is still usable afterwards.
	ok := postgres.New(db, postgres.WithQuery(`SELECT 1 AS tenant_id, NULL AS plan_id, NULL AS plan_name`))
	if got := load(t, ok); !reflect.DeepEqual(got.Tenants(), []plans.Tenant{{ID: "1"}}) {
		t.Errorf("after a cancelled query, tenants = %v", got.Tenants())
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	const pw = "s3cretpw"
	tests := []struct {
		name, dsn string
	}{
		{"URL, closed port", "postgres://u:" + pw + "@127.0.0.1:1/x"},
		{"URL, closed port, sslmode", "postgres://u:" + pw + "@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"},
		{"URL, bad port", "postgres://u:" + pw + "@127.0.0.1:notaport/x"},
		{"URL, bad option", "postgres://u:" + pw + "@127.0.0.1:1/x?sslmode=bogus"},
		{"key=value, closed port", "host=127.0.0.1 port=1 user=u password=" + pw + " dbname=x"},
		{"key=value, quoted, bad port", "host=127.0.0.1 port=nope user=u password='" + pw + "' dbname=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := postgres.Open("dsn", func() (string, error) { return tt.dsn, nil })
			if err == nil {
				defer db.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = postgres.New(db).Load(ctx)
			}
			if err == nil {
				t.Fatal("no error from a server that is not there")
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestPostgresRecoversAfterRestart(t *testing.T) {
	pg := testserver.StartPostgres(t)
	db := database(t, pg, []string{schemaFile, sampleFile}, "")
	src := postgres.New(db)
	load(t, src)

	pg.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := src.Load(ctx); err == nil {
		t.Fatal("Load succeeded with the server stopped")
	}

	pg.Start()
	// The pool may hand out a connection the restart closed; database/sql
	// retries on a bad connection, so one Load suffices.
	if got := testserver.ViewCatalog(load(t, src)); !reflect.DeepEqual(got, sampleCatalog()) {
		t.Errorf("after restart: %+v", got)
	}
}

// TestFileAndPostgresAgree: the same data as SQL and as a plans file give
// the same catalog, so switching sources changes nothing downstream.
func TestFileAndPostgresAgree(t *testing.T) {
	pg := testserver.StartPostgres(t)
	db := database(t, pg, []string{schemaFile, sampleFile}, "")
	fromDB := load(t, postgres.New(db))

	fs, err := plans.LoadFile("testdata/sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := fs.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromDB, fromFile) {
		t.Errorf("catalogs differ:\n postgres %+v\n file     %+v", fromDB, fromFile)
	}
	if !reflect.DeepEqual(testserver.ViewCatalog(fromDB), sampleCatalog()) {
		t.Errorf("postgres catalog %+v, want %+v", fromDB, sampleCatalog())
	}
}

// TestLoadOfUnchangedRowsKeepsTheTable: a load that reads the rows the last
// one read keeps the last catalog's table, and a changed row gives a
// catalog of its own that says what the rows say.
func TestLoadOfUnchangedRowsKeepsTheTable(t *testing.T) {
	pg := testserver.StartPostgres(t)
	db := database(t, pg, []string{schemaFile, sampleFile}, "")
	src := postgres.New(db)
	first := load(t, src)
	shares := func(a, b *plans.Catalog) bool {
		return unsafe.StringData(a.At(0).ID) == unsafe.StringData(b.At(0).ID)
	}
	second := load(t, src)
	if !shares(first, second) || plans.Diff(first, second) != nil {
		t.Error("a load of unchanged rows made a table of its own")
	}
	if got := testserver.ViewCatalog(second); !reflect.DeepEqual(got, sampleCatalog()) {
		t.Errorf("unchanged rows: %+v", got)
	}
	if _, err := db.Exec(`UPDATE tenants SET name = 'Acme S.A.' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	third := load(t, src)
	want := sampleCatalog()
	want.Names["1"] = "Acme S.A."
	if got := testserver.ViewCatalog(third); !reflect.DeepEqual(got, want) || shares(second, third) {
		t.Errorf("after a rename: %+v, sharing the last table %v", got, shares(second, third))
	}
	if got := plans.Diff(second, third); !slices.Equal(got, []string{"1"}) {
		t.Errorf("Diff after a rename = %v, want [1]", got)
	}
	if got := testserver.ViewCatalog(second); !reflect.DeepEqual(got, sampleCatalog()) {
		t.Errorf("the last catalog changed: %+v", got)
	}
}
