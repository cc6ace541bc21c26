package pages

import (
	"encoding/csv"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// PageSize is the tenants on one page of /tenants.
const PageSize = 50

// maxQueryLen bounds the query string.
const maxQueryLen = 2048

// listQuery is /tenants' filters; the zero value lists every band.
type listQuery struct {
	Bands  []billing.Band
	Plan   string
	Types  []string // nil: every limit type
	Search string   // a tenant id, or part of a name
	Page   int      // from 1
	CSV    bool
}

func parseListQuery(raw string) (listQuery, error) {
	q := listQuery{Page: 1}
	if len(raw) > maxQueryLen {
		return q, fmt.Errorf("the query is longer than %d bytes", maxQueryLen)
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("the query is malformed")
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := slices.DeleteFunc(values[name], func(v string) bool { return v == "" }) // an empty form field
		if len(vs) == 0 {
			continue
		}
		switch name {
		case "band":
			for _, v := range vs {
				bands, err := billing.ParseBands(v)
				if err != nil {
					return q, fmt.Errorf("band: %w", err)
				}
				q.Bands = append(q.Bands, bands...)
			}
		case "limit_type":
			for _, v := range vs {
				for lt := range strings.SplitSeq(v, ",") {
					if err := usage.ValidateMetricType(lt); err != nil {
						return q, fmt.Errorf("limit_type: %w", err)
					}
					q.Types = append(q.Types, lt)
				}
			}
		case "plan", "q", "page", "format":
			if len(vs) > 1 {
				return q, fmt.Errorf("%s is given %d times", name, len(vs))
			}
			if err := q.set(name, vs[0]); err != nil {
				return q, err
			}
		default:
			return q, fmt.Errorf("unknown parameter %.64q: this page takes band, plan, limit_type, q, page and format", name)
		}
	}
	if q.Types != nil {
		slices.Sort(q.Types)
		q.Types = slices.Compact(q.Types)
	}
	slices.Sort(q.Bands)
	q.Bands = slices.Compact(q.Bands)
	return q, nil
}

func (q *listQuery) set(name, v string) error {
	switch name {
	case "plan":
		if v != billing.NoPlanID {
			if err := usage.ValidateID(usage.PlanID, v); err != nil {
				return fmt.Errorf("plan: %w", err)
			}
		}
		q.Plan = v
	case "q":
		if err := usage.ValidateLabel("q", v, 256); err != nil {
			return err
		}
		q.Search = v
	case "page":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1e6 {
			return fmt.Errorf("page must be a whole number from 1, not %.16q", v)
		}
		q.Page = n
	case "format":
		if v != "csv" && v != "html" {
			return fmt.Errorf("format must be csv or html, not %.16q", v)
		}
		q.CSV = v == "csv"
	}
	return nil
}

// encode writes q as a query string, page p.
func (q listQuery) encode(p int, csv bool) string {
	v := url.Values{}
	for _, b := range q.Bands {
		v.Add("band", b.String())
	}
	if q.Types != nil {
		v.Set("limit_type", strings.Join(q.Types, ","))
	}
	if q.Plan != "" {
		v.Set("plan", q.Plan)
	}
	if q.Search != "" {
		v.Set("q", q.Search)
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if csv {
		v.Set("format", "csv")
	}
	if len(v) == 0 {
		return PathTenants
	}
	return PathTenants + "?" + v.Encode()
}

// wantsCSV: format=csv, or an Accept header that prefers text/csv to HTML.
func wantsCSV(q listQuery, r *http.Request) bool {
	if q.CSV {
		return true
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "text/html", "application/xhtml+xml":
			return false
		}
	}
	return false
}

// listPage is /tenants.
type listPage struct {
	Query       listQuery
	Rows        []row
	Total       int
	Page, Pages int
	Prev, Next  string
	CSV         string
	GeneratedAt string
	ResetsAt    string
	PlansStale  bool
	Bands       []bandOption
	Types       []typeOption
	Plans       []planOption
}

type bandOption struct {
	Name, Label string
	Checked     bool
}

type typeOption struct {
	Name    string
	Checked bool
}

type planOption struct {
	ID, Label string
	Selected  bool
}

// row is one tenant: its most pressed limit first, the others beside it.
type row struct {
	ID, Name, Path string
	PlanID, Plan   string
	Band           string
	Top            limitCell
	Others         []limitCell
}

type limitCell struct {
	Type         string
	Used, Limit  string
	Percentage   float64
	Band         string
	ProjectedDay string
	used, limit  int64
}

var bandLabels = map[billing.Band]string{
	billing.BandReached:   "At or over the limit",
	billing.BandNear:      fmt.Sprintf("Near the limit (over %d%%)", billing.NearLimitPercent),
	billing.BandProjected: "On course to run out this period",
}

// serveList renders the tenants that need attention, or their CSV.
func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) {
	q, err := parseListQuery(r.URL.RawQuery)
	if err != nil {
		h.error(w, http.StatusBadRequest, "Bad request", err.Error()+".")
		return
	}
	read, ok := h.recentRead(w, r)
	if !ok {
		return
	}
	rep := read.Report
	rk := rep.Ranking(q.Types)
	matches := h.filter(rep, rk, q)
	if wantsCSV(q, r) {
		h.writeCSV(w, rep, rk, matches, q.Types)
		return
	}
	loc := rep.Period.Start.Location()
	p := &listPage{
		Query: q, Total: len(matches), Page: q.Page, Pages: max(1, (len(matches)+PageSize-1)/PageSize),
		CSV:         q.encode(1, true),
		GeneratedAt: rep.At.In(loc).Format(time.DateTime),
		ResetsAt:    rep.Period.End.In(loc).Format(dayLayout+", 15:04") + " (" + loc.String() + ")",
		PlansStale:  rep.Plans.Stale(),
	}
	for _, b := range billing.Bands {
		p.Bands = append(p.Bands, bandOption{Name: b.String(), Label: bandLabels[b], Checked: slices.Contains(q.Bands, b)})
	}
	for _, lt := range h.service.LimitTypes(rep) {
		p.Types = append(p.Types, typeOption{Name: lt, Checked: slices.Contains(q.Types, lt)})
	}
	p.Plans = append(p.Plans, planOption{ID: billing.NoPlanID, Label: "no active plan (defaults)", Selected: q.Plan == billing.NoPlanID})
	if cat := rep.Plans.Catalog; cat != nil {
		for _, id := range slices.Sorted(maps.Keys(cat.Plans)) {
			p.Plans = append(p.Plans, planOption{ID: id, Label: cat.Plans[id].Name + " (" + id + ")", Selected: q.Plan == id})
		}
	}
	lo := min((q.Page-1)*PageSize, len(matches))
	hi := min(lo+PageSize, len(matches))
	for _, i := range matches[lo:hi] {
		p.Rows = append(p.Rows, h.newRow(rep, rk[i], q.Types))
	}
	if q.Page > 1 {
		p.Prev = q.encode(q.Page-1, false)
	}
	if hi < len(matches) {
		p.Next = q.encode(q.Page+1, false)
	}
	h.render(w, http.StatusOK, "list.html", p)
}

// filter returns the positions in rk of the tenants q lists, in rk's order.
func (h *Handler) filter(rep *billing.Report, rk []billing.Ranked, q listQuery) []int {
	bands := q.Bands
	if bands == nil {
		bands = billing.Bands
	}
	search := strings.ToLower(q.Search)
	var out []int
	for i, e := range rk {
		if !slices.Contains(bands, e.Band) {
			continue
		}
		t := rep.Tenants.At(e.Index)
		if q.Plan != "" && t.PlanID != q.Plan {
			continue
		}
		if search != "" && t.ID != q.Search && !strings.Contains(strings.ToLower(rep.TenantName(t.ID)), search) {
			continue
		}
		out = append(out, i)
	}
	return out
}

func (h *Handler) newRow(rep *billing.Report, e billing.Ranked, types []string) row {
	t := rep.Tenants.At(e.Index)
	rw := row{ID: t.ID, Name: rep.TenantName(t.ID), Path: TenantPath(t.ID), PlanID: t.PlanID, Band: e.Band.String()}
	switch {
	case t.UsingDefaults:
		rw.Plan = "defaults"
	case t.PlanName != "":
		rw.Plan = t.PlanName
	default:
		rw.Plan = t.PlanID
	}
	for _, s := range rep.Standings(e.Index) {
		if types != nil && !slices.Contains(types, s.Type) {
			continue
		}
		c := limitCell{Type: s.Type, Used: amount(s.Type, s.Used), Limit: amount(s.Type, s.Limit), Percentage: s.Percentage,
			Band: s.Band.String(), used: s.Used, limit: s.Limit}
		if !s.ReachesAt.IsZero() {
			c.ProjectedDay = s.ReachesAt.Format(time.DateOnly)
		}
		if s.Type == e.Top {
			rw.Top = c
		} else {
			rw.Others = append(rw.Others, c)
		}
	}
	return rw
}

// csvHeader names the CSV's columns.
var csvHeader = []string{"tenant_id", "name", "plan_id", "plan_name", "band", "limit_type", "used", "limit", "percentage",
	"projected_limit_date", "other_limits"}

// writeCSV writes every tenant of matches, as the list shows them.
func (h *Handler) writeCSV(w http.ResponseWriter, rep *billing.Report, rk []billing.Ranked, matches []int, types []string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="tenants-`+rep.Period.ID+`.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	for _, i := range matches {
		rw := h.newRow(rep, rk[i], types)
		t := rep.Tenants.At(rk[i].Index)
		var others []string
		for _, c := range rw.Others {
			others = append(others, fmt.Sprintf("%s %s", c.Type, percent(c.Percentage)))
		}
		_ = cw.Write([]string{
			cell(rw.ID), cell(rw.Name), cell(t.PlanID), cell(t.PlanName), rw.Band, rw.Top.Type,
			strconv.FormatInt(rw.Top.used, 10), strconv.FormatInt(rw.Top.limit, 10),
			strconv.FormatFloat(rw.Top.Percentage, 'f', 2, 64), rw.Top.ProjectedDay, cell(strings.Join(others, "; ")),
		})
	}
	cw.Flush()
}

// cell defuses a value a spreadsheet would take for a formula.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
