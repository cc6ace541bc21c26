package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// tenantListView is GET /api/v1/tenants: the tenants at or above a
// percentage of one limit type, highest first.
type tenantListView struct {
	LimitType     string     `json:"limit_type"`
	MinPercentage float64    `json:"min_percentage"`
	Limit         int        `json:"limit"`
	Period        periodView `json:"period"`
	// GeneratedAt is when the data was read (service clock, billing time
	// zone); DataAgeSeconds how long ago that was.
	GeneratedAt     string   `json:"generated_at"`
	DataAgeSeconds  float64  `json:"data_age_seconds"`
	PlansStale      bool     `json:"plans_stale"`
	PlansAgeSeconds *float64 `json:"plans_age_seconds"`
	// Total counts every matching tenant, on every page.
	Total      int              `json:"total"`
	Tenants    []tenantListItem `json:"tenants"`
	NextCursor *string          `json:"next_cursor"`
}

type tenantListItem struct {
	TenantID      string   `json:"tenant_id"`
	UsagePath     string   `json:"usage_path"`
	Plan          *planRef `json:"plan"`
	UsingDefaults bool     `json:"using_defaults"`
	metricUsage
}

// listCursor is the position after the last tenant of a page. It is sent
// as unpadded base64url of its JSON: opaque to clients, and keyset-based,
// so that a page boundary stays put when the data is refreshed between
// pages (a tenant whose percentage changed may move across it, as in any
// live listing, but no tenant is listed twice for standing still).
type listCursor struct {
	Version   int     `json:"v"`
	LimitType string  `json:"t"`
	Pct       float64 `json:"p"`
	TenantID  string  `json:"i"`
}

const cursorVersion = 1

func (c listCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, limitType string) (*listCursor, *problem) {
	bad := errInvalidParam("cursor", "is not a cursor this API issued; take next_cursor from the previous page as it is")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c listCursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, bad
	}
	if c.Version != cursorVersion || usage.ValidateID(usage.TenantID, c.TenantID) != nil ||
		math.IsNaN(c.Pct) || math.IsInf(c.Pct, 0) || c.Pct < 0 {
		return nil, bad
	}
	if c.LimitType != limitType {
		return nil, errInvalidParam("cursor", fmt.Sprintf("was issued for limit_type=%.64q, not %.64q; repeat the same limit_type or drop the cursor", c.LimitType, limitType))
	}
	return &c, nil
}

// after reports whether a tenant with pct and id comes after the cursor
// in list order (percentage descending, then tenant id ascending).
func (c *listCursor) after(pct float64, id string) bool {
	return pct < c.Pct || (pct == c.Pct && id > c.TenantID)
}

// serveTenants answers from the billing core's recent full read.
func (h *Handler) serveTenants(w http.ResponseWriter, r *http.Request, query map[string]string) {
	limitType, minPct, limit := DefaultLimitType, 0.0, DefaultListLimit
	var perr *problem
	if s, ok := query["limit_type"]; ok {
		if limitType, perr = parseLimitType("limit_type", s); perr != nil {
			h.problem(w, r, perr)
			return
		}
	}
	if s, ok := query["min_percentage"]; ok {
		if minPct, perr = parsePercentage("min_percentage", s); perr != nil {
			h.problem(w, r, perr)
			return
		}
	}
	if s, ok := query["limit"]; ok {
		if limit, perr = parseLimit("limit", s); perr != nil {
			h.problem(w, r, perr)
			return
		}
	}
	var cur *listCursor
	if s, ok := query["cursor"]; ok {
		if cur, perr = decodeCursor(s, limitType); perr != nil {
			h.problem(w, r, perr)
			return
		}
	}

	read, ok := h.recentRead(w, r)
	if !ok {
		return
	}
	rep := read.Report
	if !rep.UsageUp() {
		h.problem(w, r, errUsageUnavailable(rep.UsageErr))
		return
	}
	if !rep.Plans.LimitsKnown() {
		h.problem(w, r, errLimitsUnavailable(rep.Plans.Source, rep.Plans.Err))
		return
	}
	if known := h.limitTypes(rep); !slices.Contains(known, limitType) {
		h.problem(w, r, errInvalidParam("limit_type",
			fmt.Sprintf("%.64q is not a metric type this exporter knows or any plan limits (known: %s)", limitType, strings.Join(known, ", "))))
		return
	}

	rk := h.rankings.of(read, limitType)
	// rk is sorted by percentage descending: the matches are a prefix, and
	// the cursor's position is found by binary search.
	end := sort.Search(len(rk), func(i int) bool { return rk[i].pct < minPct })
	start := 0
	if cur != nil {
		start = sort.Search(end, func(i int) bool {
			return cur.after(rk[i].pct, rep.Tenants[rk[i].idx].ID)
		})
	}
	stop := min(start+limit, end)

	v := &tenantListView{
		LimitType:       limitType,
		MinPercentage:   minPct,
		Limit:           limit,
		Period:          newPeriodView(rep.Period, rep.At),
		GeneratedAt:     timestamp(rep.At, rep.Period),
		DataAgeSeconds:  round(read.Age().Seconds(), 3),
		PlansStale:      rep.Plans.Stale(),
		PlansAgeSeconds: plansAge(rep.Plans, rep.At),
		Total:           end,
		Tenants:         make([]tenantListItem, 0, stop-start),
	}
	for _, e := range rk[start:stop] {
		t := &rep.Tenants[e.idx]
		v.Tenants = append(v.Tenants, tenantListItem{
			TenantID:      t.ID,
			UsagePath:     TenantUsagePath(t.ID),
			Plan:          newPlanRef(t),
			UsingDefaults: t.UsingDefaults,
			metricUsage:   h.newMetricUsage(t, limitType, rep.Period, rep.At),
		})
	}
	if stop < end {
		last := rk[stop-1]
		next := listCursor{Version: cursorVersion, LimitType: limitType, Pct: last.pct, TenantID: rep.Tenants[last.idx].ID}.encode()
		v.NextCursor = &next
	}
	renderJSON(r.Context(), w, v)
}

// limitTypes are the types a list can be asked about: those the defaults
// or any plan limit, and the configured metric types, sorted.
func (h *Handler) limitTypes(rep *billing.Report) []string {
	set := map[string]bool{}
	for lt := range h.service.Defaults() {
		set[lt] = true
	}
	if cat := rep.Plans.Catalog; cat != nil {
		for _, p := range cat.Plans {
			for lt := range p.Limits {
				set[lt] = true
			}
		}
	}
	for _, mt := range h.service.MetricTypes() {
		set[mt.Name] = true
	}
	return slices.Sorted(maps.Keys(set))
}
