package postgres_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// BenchmarkLoad reads the plans of BENCH_TENANTS tenants (default 10000)
// from a real PostgreSQL with the default query: "unchanged" loads the
// same rows again, "changed" moves a tenant to the other plan before each load:
//
//	BENCH_TENANTS=100000 go test -run '^$' -bench Load -cpuprofile cpu.out ./internal/plans/postgres/
func BenchmarkLoad(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BENCH_TENANTS")); err == nil && v > 0 {
		n = v
	}
	pg := testserver.StartPostgres(b)
	testserver.LoadSchema(b, pg, "../../../examples/schema.sql")
	pg.Exec(`INSERT INTO plans VALUES (1, 'starter', 5000, 1073741824, 5, 1), (2, 'pro', 50000, NULL, 25, 5);
INSERT INTO tenants SELECT g, 'tenant ' || g, CASE WHEN g % 33 = 0 THEN NULL ELSE 1 + g % 2 END FROM generate_series(1, ` + strconv.Itoa(n) + `) g;`)
	db, err := postgres.Open("dsn", func() (string, error) { return pg.DSN(), nil })
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, changed := range []bool{false, true} {
		name := map[bool]string{false: "unchanged", true: "changed"}[changed]
		b.Run(name, func(b *testing.B) {
			src := postgres.New(db)
			load := func() {
				cat, err := src.Load(context.Background())
				if err != nil || cat.Len() != n {
					b.Fatalf("%v, %d tenants", err, cat.Len())
				}
			}
			load()
			for b.Loop() {
				if changed {
					b.StopTimer()
					if _, err := db.Exec(`UPDATE tenants SET plan_id = 3 - plan_id WHERE id = 1`); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				load()
			}
		})
	}
}
