package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// fields are the usage hash fields, in the order of plan.limits.
var fields = [4]string{"messages", "storage", "users", "whatsappSessions"}

const (
	gib = int64(1) << 30
	tib = int64(1) << 40
)

// plan is a row of the plans table; a limit of 0 is NULL (unlimited).
type plan struct {
	id     int64
	name   string
	limits [4]int64
	share  float64 // of all tenants
}

// benchPlans: 97 % of the tenants are on a plan, 3 % on none.
var benchPlans = []plan{
	{1, "starter", [4]int64{5_000, 1 * gib, 5, 2}, 0.50},
	{2, "pro", [4]int64{50_000, 10 * gib, 25, 5}, 0.30},
	{3, "business", [4]int64{500_000, 100 * gib, 100, 20}, 0.14},
	{4, "enterprise", [4]int64{0, 1 * tib, 0, 100}, 0.03},
}

// unlimitedScale is the median usage of a metric with no limit, and
// noPlanScale the scale of tenants without a plan (small accounts).
var (
	unlimitedScale = [4]float64{2_000_000, float64(50 * gib), 400, 50}
	noPlanScale    = [4]float64{5_000, float64(1 * gib), 5, 2}
)

// Per metric, the probability that a tenant is near (80-99 %) or over
// (> 100 %) its limit in a month; the rest are spread below 80 %.
var (
	pNear = [4]float64{0.08, 0.04, 0.03, 0.03}
	pOver = [4]float64{0.03, 0.01, 0.01, 0.01}
	// Fraction of the limit used by "normal" tenants: log-normal, with a
	// long tail for messages.
	normalMedian = [4]float64{0.10, 0.30, 0.40, 0.40}
	normalSigma  = [4]float64{1.3, 0.7, 0.5, 0.5}
)

type tenant struct {
	id   int64
	plan *plan // nil: no active plan
}

// genStats describes the generated data of the current period.
type genStats struct {
	keys, current   int
	near, over      int // tenants whose highest limited metric is at 80-99 %, >= 100 %
	noPlan          int
	redis, postgres time.Duration
}

// keyPattern names the usage hashes as the exporter's default --usage.key-pattern.
var keyPattern = usage.MustParseKeyPattern(usage.DefaultKeyPattern)

// usageKey is the usage key of tenant id in period periodID.
func usageKey(id int64, periodID string) string {
	return keyPattern.Key(strconv.FormatInt(id, 10), periodID)
}

// periods returns the ids of the current period and the months-1 before it,
// in UTC (the exporter's default --billing.timezone), current first.
func periods(now time.Time, months int) []string {
	out := make([]string, months)
	p := period.At(now, time.UTC)
	for i := range out {
		out[i] = p.ID
		p = p.Previous()
	}
	return out
}

func makeTenants(n int, rng *rand.Rand) []tenant {
	ts := make([]tenant, n)
	for i := range ts {
		ts[i].id = int64(i + 1)
		r := rng.Float64()
		for j := range benchPlans {
			if r < benchPlans[j].share {
				ts[i].plan = &benchPlans[j]
				break
			}
			r -= benchPlans[j].share
		}
	}
	return ts
}

// usageValues draws one month of a tenant's usage and returns it with the
// highest fraction of a limit (0 when nothing is limited).
func usageValues(t tenant, rng *rand.Rand) (vals [4]int64, maxFrac float64) {
	for m := range fields {
		var limit int64
		scale := noPlanScale[m]
		if t.plan != nil {
			limit = t.plan.limits[m]
			scale = unlimitedScale[m]
		}
		if limit == 0 {
			v := scale * math.Exp(normalSigma[m]*1.5*rng.NormFloat64())
			vals[m] = int64(v)
		} else {
			vals[m] = int64(float64(limit) * usedFraction(m, rng))
		}
		if m >= 2 && vals[m] < 1 { // users, sessions: at least one
			vals[m] = 1
		}
		if limit > 0 {
			maxFrac = max(maxFrac, float64(vals[m])/float64(limit))
		}
	}
	return vals, maxFrac
}

func usedFraction(m int, rng *rand.Rand) float64 {
	switch r := rng.Float64(); {
	case r < pOver[m]:
		if rng.Float64() < 0.1 {
			return 1.5 + 3*rng.Float64() // the long tail of heavy overuse
		}
		return 1.0 + 0.5*rng.Float64()
	case r < pOver[m]+pNear[m]:
		return 0.80 + 0.19*rng.Float64()
	}
	f := normalMedian[m] * math.Exp(normalSigma[m]*rng.NormFloat64())
	return min(max(f, 0.0005), 0.79)
}

// writeRedis writes tenants × months hashes with pipelined HSETs in batches.
func writeRedis(r *redisServer, ts []tenant, months []string, rng *rand.Rand, st *genStats) error {
	start := time.Now()
	c, err := r.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	const batch = 1000
	pending := 0
	flush := func() error {
		if pending == 0 {
			return nil
		}
		replies, err := redis.Values(c.Do(""))
		if err != nil {
			return fmt.Errorf("HSET pipeline: %w", err)
		}
		for _, rep := range replies {
			if e, ok := rep.(redis.Error); ok {
				return fmt.Errorf("HSET: %w", e)
			}
		}
		pending = 0
		return nil
	}
	// Oldest month first, as a backend would have written them.
	for i := len(months) - 1; i >= 0; i-- {
		for _, t := range ts {
			vals, frac := usageValues(t, rng)
			key := usageKey(t.id, months[i])
			args := []any{key}
			for m, f := range fields {
				args = append(args, f, vals[m])
			}
			if err := c.Send("HSET", args...); err != nil {
				return err
			}
			st.keys++
			if i == 0 {
				st.current++
				switch {
				case frac >= 1:
					st.over++
				case frac >= 0.8:
					st.near++
				}
			}
			if pending++; pending == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	st.redis = time.Since(start)
	return nil
}

// writePostgres creates the database "billing" with examples/schema.sql and
// loads the plans and the tenants (COPY).
func writePostgres(pg *pgServer, schemaPath string, ts []tenant, st *genStats) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	schema, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	admin, err := pgx.Connect(ctx, pg.dsn("postgres"))
	if err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE billing")
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	c, err := pgx.Connect(ctx, pg.dsn("billing"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, string(schema)); err != nil { // no arguments: simple protocol, several statements
		return fmt.Errorf("%s: %w", schemaPath, err)
	}
	for _, p := range benchPlans {
		limit := func(v int64) any {
			if v == 0 {
				return nil
			}
			return v
		}
		_, err := c.Exec(ctx, `INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
			VALUES ($1, $2, $3, $4, $5, $6)`, p.id, p.name,
			limit(p.limits[0]), limit(p.limits[1]), limit(p.limits[2]), limit(p.limits[3]))
		if err != nil {
			return fmt.Errorf("insert plan: %w", err)
		}
	}
	rows := make([][]any, len(ts))
	for i, t := range ts {
		var planID any
		if t.plan != nil {
			planID = t.plan.id
		} else {
			st.noPlan++
		}
		rows[i] = []any{t.id, "Tenant " + strconv.FormatInt(t.id, 10), planID}
	}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"tenants"}, []string{"id", "name", "plan_id"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("COPY tenants: %w", err)
	}
	if _, err := c.Exec(ctx, "ANALYZE"); err != nil {
		return err
	}
	st.postgres = time.Since(start)
	return nil
}
