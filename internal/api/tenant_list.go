package api

import (
	"bytes"
	"cmp"
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

// tenantListView is GET /api/v1/tenants.
type tenantListView struct {
	LimitType       string           `json:"limit_type"`
	MinPercentage   float64          `json:"min_percentage"`
	Limit           int              `json:"limit"`
	Period          periodView       `json:"period"`
	GeneratedAt     string           `json:"generated_at"`
	DataAgeSeconds  float64          `json:"data_age_seconds"`
	PlansStale      bool             `json:"plans_stale"`
	PlansAgeSeconds *float64         `json:"plans_age_seconds"`
	Total           int              `json:"total"`
	Tenants         []tenantListItem `json:"tenants"`
	NextCursor      *string          `json:"next_cursor"`
}

type tenantListItem struct {
	TenantID      string   `json:"tenant_id"`
	UsagePath     string   `json:"usage_path"`
	Plan          *planRef `json:"plan"`
	UsingDefaults bool     `json:"using_defaults"`
	metricUsage
}

// listCursor is the position after a page's last tenant: keyset
// pagination keeps page boundaries in place when the data is refreshed.
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

// serveTenants answers from the billing core's recent full read.
func (h *Handler) serveTenants(w http.ResponseWriter, r *http.Request, query map[string]string) {
	limitType, p1 := param(query, "limit_type", DefaultLimitType, parseLimitType)
	minPct, p2 := param(query, "min_percentage", 0.0, parsePercentage)
	limit, p3 := param(query, "limit", DefaultListLimit, parseLimit)
	cur, p4 := param(query, "cursor", nil, func(_, s string) (*listCursor, *problem) { return decodeCursor(s, limitType) })
	if perr := cmp.Or(p1, p2, p3, p4); perr != nil {
		h.problem(w, r, perr)
		return
	}
	read, ok := h.recentRead(w, r, true)
	if !ok {
		return
	}
	rep := read.Report
	if known := h.limitTypes(rep); !slices.Contains(known, limitType) {
		h.problem(w, r, errInvalidParam("limit_type",
			fmt.Sprintf("%.64q is not a metric type this exporter knows or any plan limits (known: %s)", limitType, strings.Join(known, ", "))))
		return
	}

	// rk is sorted by percentage descending: the matches are a prefix.
	rk := h.rankings.of(read, limitType)
	end := sort.Search(len(rk), func(i int) bool { return rk[i].pct < minPct })
	start := 0
	if cur != nil {
		// The first tenant after the cursor.
		start = sort.Search(end, func(i int) bool {
			pct, id := rk[i].pct, rep.Tenants[rk[i].idx].ID
			return pct < cur.Pct || (pct == cur.Pct && id > cur.TenantID)
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
		v.Tenants = append(v.Tenants, tenantListItem{TenantID: t.ID, UsagePath: TenantUsagePath(t.ID), Plan: newPlanRef(t),
			UsingDefaults: t.UsingDefaults, metricUsage: h.newMetricUsage(t, limitType, rep.Period, rep.At)})
	}
	if stop < end {
		last := rk[stop-1]
		next := listCursor{Version: cursorVersion, LimitType: limitType, Pct: last.pct, TenantID: rep.Tenants[last.idx].ID}.encode()
		v.NextCursor = &next
	}
	renderJSON(r.Context(), w, v)
}

// limitTypes are the limited and the configured metric types, sorted.
func (h *Handler) limitTypes(rep *billing.Report) []string {
	set := map[string]int64{} // the keys
	maps.Copy(set, h.service.Defaults())
	if cat := rep.Plans.Catalog; cat != nil {
		for _, p := range cat.Plans {
			maps.Copy(set, p.Limits)
		}
	}
	for _, mt := range h.service.MetricTypes() {
		set[mt.Name] = 0
	}
	return slices.Sorted(maps.Keys(set))
}
