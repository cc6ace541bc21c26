package api

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
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
	LimitType              string           `json:"limit_type"`
	LimitTypes             []string         `json:"limit_types"`
	MinPercentage          float64          `json:"min_percentage"`
	MaxPercentage          *float64         `json:"max_percentage"`
	ProjectedMinPercentage *float64         `json:"projected_min_percentage"`
	Bands                  []string         `json:"bands"`
	Limit                  int              `json:"limit"`
	Period                 periodView       `json:"period"`
	GeneratedAt            string           `json:"generated_at"`
	DataAgeSeconds         float64          `json:"data_age_seconds"`
	PlansStale             bool             `json:"plans_stale"`
	PlansAgeSeconds        *float64         `json:"plans_age_seconds"`
	Total                  int              `json:"total"`
	Tenants                []tenantListItem `json:"tenants"`
	NextCursor             *string          `json:"next_cursor"`
}

type tenantListItem struct {
	TenantID      string   `json:"tenant_id"`
	Name          *string  `json:"name"`
	UsagePath     string   `json:"usage_path"`
	Plan          *planRef `json:"plan"`
	UsingDefaults bool     `json:"using_defaults"`
	// LimitType is the tenant's most pressed limit of the listed types,
	// whose figures follow.
	LimitType         string  `json:"limit_type"`
	HighestPercentage float64 `json:"highest_percentage"`
	metricUsage
}

// listCursor is the position after a page's last tenant: keyset
// pagination keeps page boundaries in place when the data is refreshed.
type listCursor struct {
	Version   int     `json:"v"`
	LimitType string  `json:"t"`
	Pressure  float64 `json:"p"`
	Band      int     `json:"b"`
	TenantID  string  `json:"i"`
}

const cursorVersion = 2

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
		math.IsNaN(c.Pressure) || math.IsInf(c.Pressure, 0) || c.Pressure < 0 ||
		c.Band < int(billing.BandNone) || c.Band > int(billing.BandReached) {
		return nil, bad
	}
	if c.LimitType != limitType {
		return nil, errInvalidParam("cursor", fmt.Sprintf("was issued for limit_type=%.64q, not %.64q; repeat the same limit_type or drop the cursor", c.LimitType, limitType))
	}
	return &c, nil
}

// serveTenants pages through the billing core's ranking of its recent full read.
func (h *Handler) serveTenants(w http.ResponseWriter, r *http.Request, query map[string]string) {
	types, p1 := param(query, "limit_type", []string{DefaultLimitType}, parseLimitTypes)
	typesKey := strings.Join(types, ",")
	minPct, p2 := param(query, "min_percentage", 0.0, parsePercentage)
	maxPct, p3 := param(query, "max_percentage", -1.0, parsePercentage)
	projMin, p4 := param(query, "projected_min_percentage", -1.0, parsePercentage)
	bands, p5 := param(query, "band", nil, parseBands)
	limit, p6 := param(query, "limit", DefaultListLimit, parseLimit)
	cur, p7 := param(query, "cursor", nil, func(_, s string) (*listCursor, *problem) { return decodeCursor(s, typesKey) })
	if perr := cmp.Or(p1, p2, p3, p4, p5, p6, p7); perr != nil {
		h.problem(w, r, perr)
		return
	}
	if maxPct >= 0 && maxPct < minPct {
		h.problem(w, r, errInvalidParam("max_percentage", fmt.Sprintf("%g is below min_percentage %g", maxPct, minPct)))
		return
	}
	read, ok := h.recentRead(w, r, true)
	if !ok {
		return
	}
	rep := read.Report
	known := h.service.LimitTypes(rep)
	for _, lt := range types {
		if !slices.Contains(known, lt) {
			h.problem(w, r, errInvalidParam("limit_type",
				fmt.Sprintf("%.64q is not a metric type this exporter knows or any plan limits (known: %s)", lt, strings.Join(known, ", "))))
			return
		}
	}

	// rk is by pressure descending: the percentage range is a slice of it.
	rk := rep.Ranking(types)
	end := sort.Search(len(rk), func(i int) bool { return rk[i].Pressure < minPct })
	start := 0
	if maxPct >= 0 {
		start = sort.Search(end, func(i int) bool { return rk[i].Pressure <= maxPct })
	}
	if cur != nil {
		start = max(start, rep.RankedAfter(rk, cur.Pressure, billing.Band(cur.Band), cur.TenantID))
	}
	keep := func(e billing.Ranked) bool {
		if bands != nil && !slices.Contains(bands, e.Band) {
			return false
		}
		return projMin < 0 || h.projectedPressure(rep, rep.Tenants.At(e.Index), types) >= projMin
	}
	v := &tenantListView{
		LimitType:       typesKey,
		LimitTypes:      types,
		MinPercentage:   minPct,
		Bands:           []string{},
		Limit:           limit,
		Period:          newPeriodView(rep.Period, rep.At),
		GeneratedAt:     timestamp(rep.At, rep.Period),
		DataAgeSeconds:  round(read.Age().Seconds(), 3),
		PlansStale:      rep.Plans.Stale(),
		PlansAgeSeconds: plansAge(rep.Plans, rep.At),
		Tenants:         []tenantListItem{},
	}
	if maxPct >= 0 {
		v.MaxPercentage = &maxPct
	}
	if projMin >= 0 {
		v.ProjectedMinPercentage = &projMin
	}
	for _, b := range bands {
		v.Bands = append(v.Bands, b.String())
	}
	// The whole range is counted; a page holds the first matches after the cursor.
	all := rk[:end]
	if maxPct >= 0 {
		all = rk[sort.Search(end, func(i int) bool { return rk[i].Pressure <= maxPct }):end]
	}
	if bands == nil && projMin < 0 {
		v.Total = len(all)
	} else {
		for _, e := range all {
			if keep(e) {
				v.Total++
			}
		}
	}
	var last *billing.Ranked
	for i := start; i < end; i++ {
		e := rk[i]
		if !keep(e) {
			continue
		}
		if len(v.Tenants) == limit {
			next := listCursor{Version: cursorVersion, LimitType: typesKey, Pressure: last.Pressure, Band: int(last.Band),
				TenantID: rep.Tenants.At(last.Index).ID}.encode()
			v.NextCursor = &next
			break
		}
		t := rep.Tenants.At(e.Index)
		item := tenantListItem{TenantID: t.ID, UsagePath: TenantUsagePath(t.ID), Plan: newPlanRef(t),
			UsingDefaults: t.UsingDefaults, LimitType: e.Top, HighestPercentage: e.Pressure,
			metricUsage: h.newMetricUsage(t, e.Top, rep.Period, rep.At)}
		if name := rep.TenantName(t.ID); name != "" {
			item.Name = &name
		}
		v.Tenants = append(v.Tenants, item)
		last = &rk[i]
	}
	renderJSON(r.Context(), w, v)
}

// projectedPressure is the tenant's highest projected percentage of types,
// -1 without a projection.
func (h *Handler) projectedPressure(rep *billing.Report, t *billing.TenantStatus, types []string) float64 {
	top := -1.0
	for _, lt := range types {
		if s, ok := t.Standing(lt, rep.Monthly(lt), rep.Period, rep.At); ok && s.ProjectedOK {
			top = max(top, s.ProjectedPercentage())
		}
	}
	return top
}
