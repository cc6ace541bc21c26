package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"go.yaml.in/yaml/v3"
)

// The exchanges the tests see are checked against openapi.yaml with
// kin-openapi's openapi3filter: the request (when the API accepted it, the
// document must accept it too) and the response (status, headers, content
// type, body schema). What is ours is the routing to an operation and the
// coverage bookkeeping: the API routes on escaped path segments (a tenant
// id may hold %2F), which kin-openapi's routers do not, and the responses
// the document shares through components (404 off the documented paths,
// 405 for other methods, 414 anywhere under /api/) belong to no operation.

func init() {
	// /api/v1/openapi.yaml is documented as one string: kin-openapi's own
	// YAML decoder would hand the schema the decoded document. The body
	// must still be YAML.
	openapi3filter.RegisterBodyDecoder("application/yaml", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("not YAML: %w", err)
		}
		return string(b), nil
	})
}

type openAPIDoc struct {
	spec *openapi3.T
}

// parseOpenAPI loads and validates the document: every $ref resolves,
// every schema is well formed, every format and pattern is one the
// validation knows.
func parseOpenAPI(data []byte) (*openAPIDoc, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.0.") {
		return nil, fmt.Errorf("openapi.yaml: version %q, the tests know 3.0.x", spec.OpenAPI)
	}
	if err := spec.Validate(context.Background(), openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaPatternValidation()); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return &openAPIDoc{spec: spec}, nil
}

// paths returns the documented path templates.
func (d *openAPIDoc) paths() []string {
	var out []string
	for tmpl := range d.spec.Paths.Map() {
		out = append(out, tmpl)
	}
	slices.Sort(out)
	return out
}

// findPath returns the template of the documented path that matches an
// escaped request path, segment by segment ({name} matches any one
// segment; literals compare after unescaping, as the router does), and
// the path parameters, unescaped.
func (d *openAPIDoc) findPath(escaped string) (string, map[string]string, bool) {
	segs := strings.Split(escaped, "/")
	for _, tmpl := range d.paths() {
		tsegs := strings.Split(tmpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, ts := range tsegs {
			s, err := url.PathUnescape(segs[i])
			if err != nil {
				ok = false
				break
			}
			if name, isParam := strings.CutPrefix(ts, "{"); isParam && strings.HasSuffix(name, "}") {
				params[strings.TrimSuffix(name, "}")] = s
				continue
			}
			if s != ts {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, params, true
		}
	}
	return "", nil, false
}

// exchange is one request and response seen by the tests.
type exchange struct {
	test, method, path, query string
	status                    int
	header                    http.Header
	body                      []byte
}

func (e exchange) String() string {
	q := ""
	if e.query != "" {
		q = "?" + e.query
	}
	return fmt.Sprintf("%s: %s %.120s%.120s → %d", e.test, e.method, e.path, q, e.status)
}

// responseKey identifies a documented response for the coverage check.
type responseKey struct{ path, method, status string }

// shared is an operation answering only with the named component response.
func (d *openAPIDoc) shared(status int, name string) *openapi3.Operation {
	return &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, d.spec.Components.Responses[name]))}
}

// check validates one exchange and returns its problems and which
// documented response it exercised.
func (d *openAPIDoc) check(e exchange) (responseKey, []string) {
	var key responseKey
	status := strconv.Itoa(e.status)
	tmpl, params, found := d.findPath(e.path)
	var item *openapi3.PathItem
	var op *openapi3.Operation
	if found {
		item = d.spec.Paths.Value(tmpl)
		op = item.GetOperation(e.method)
	}
	switch {
	case op != nil:
		// A documented operation must list every status it answers,
		// 414 included: IncludeResponseStatus below.
		key = responseKey{tmpl, strings.ToLower(e.method), status}
	case e.status == http.StatusRequestURITooLong:
		// Anywhere else under /api/: components/responses/URITooLong.
		op, key = d.shared(e.status, "URITooLong"), responseKey{"*", "*", status}
	case !found:
		if e.status != http.StatusNotFound {
			return key, []string{fmt.Sprintf("undocumented path answered %d, want 404", e.status)}
		}
		op, key = d.shared(e.status, "NotFound"), responseKey{"*", "*", status}
	default:
		if e.status != http.StatusMethodNotAllowed {
			return key, []string{fmt.Sprintf("undocumented method on %s answered %d, want 405", tmpl, e.status)}
		}
		op, key = d.shared(e.status, "MethodNotAllowed"), responseKey{"*", "other-method", status}
	}

	method := e.method
	var errs []string
	if method == http.MethodHead {
		// ValidateResponse skips HEAD altogether; its headers are checked
		// as GET's would be, and it has no body.
		method = http.MethodGet
		if len(e.body) > 0 {
			errs = append(errs, "HEAD response with a body")
		}
	}
	unescaped, err := url.PathUnescape(e.path)
	if err != nil {
		unescaped = e.path
	}
	req := &http.Request{Method: method, URL: &url.URL{Path: unescaped, RawPath: e.path, RawQuery: e.query}, Header: http.Header{}}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      &routers.Route{Spec: d.spec, Path: tmpl, PathItem: item, Method: method, Operation: op},
		Options:    &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	in.Options.WithCustomSchemaErrorFunc(shortSchemaError)
	if e.status < 300 {
		// The API is stricter than the document (unknown or repeated
		// parameters, tenant id rules); what it accepts, the document
		// must accept.
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			errs = append(errs, fmt.Sprintf("the API accepted a request the document rejects: %v", err))
		}
	}
	if r := op.Responses.Status(e.status); r != nil && len(r.Value.Content) == 0 && len(e.body) > 0 {
		errs = append(errs, "a body where the document has no content")
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 e.status,
		Header:                 e.header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   e.method == http.MethodHead,
		},
	}
	out.Options.WithCustomSchemaErrorFunc(shortSchemaError)
	out.SetBodyBytes(e.body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		errs = append(errs, err.Error())
	}
	return key, errs
}

// shortSchemaError says where and why in one line, without the schema
// and value dumps kin-openapi adds by default (the failure output prints
// the body).
func shortSchemaError(err *openapi3.SchemaError) string {
	if err.Reason == "" {
		return ""
	}
	return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
}

// documentedResponses lists every response the document promises, for the
// coverage check: each (path, method, status), plus the shared ones.
func (d *openAPIDoc) documentedResponses() []responseKey {
	var out []responseKey
	for tmpl, item := range d.spec.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				out = append(out, responseKey{tmpl, strings.ToLower(method), status})
			}
		}
	}
	out = append(out, responseKey{"*", "*", "404"}, responseKey{"*", "other-method", "405"})
	slices.SortFunc(out, func(a, b responseKey) int {
		return strings.Compare(a.path+" "+a.method+" "+a.status, b.path+" "+b.method+" "+b.status)
	})
	return out
}

// TestValidatorRejects: the validation has teeth. Each crafted exchange
// (never sent by the API) breaks the document in one way.
func TestValidatorRejects(t *testing.T) {
	doc, err := parseOpenAPI(openapiYAML)
	if err != nil {
		t.Fatal(err)
	}
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	problemHdr := http.Header{"Content-Type": {"application/problem+json"}}
	goodUsage := `{"tenant_id":"1","name":null,"generated_at":"2026-11-15T12:00:00Z",
		"period":{"id":"202611","start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z","resets_at":"2026-12-01T00:00:00Z","elapsed_fraction":0.5},
		"plan":null,"using_defaults":true,"limits_known":true,"plans_stale":false,"plans_age_seconds":null,"usage_recorded":true,
		"metrics":{"messages":{"used":1,"unavailable":null,"limit":10,"remaining":9,"exceeded":false,"reached":false,"band":"none","percentage":10,"monthly_reset":true,"projected":null,"projected_percentage":null,"projected_limit_date":null}}}`
	usageEx := func(body string) exchange {
		return exchange{method: "GET", path: "/api/v1/tenants/1/usage", status: 200, header: jsonHdr, body: []byte(body)}
	}
	goodList := `{"limit_type":"messages","limit_types":["messages"],"min_percentage":0,"max_percentage":null,
		"projected_min_percentage":null,"bands":[],"limit":50,
		"period":{"id":"202611","start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z","resets_at":"2026-12-01T00:00:00Z","elapsed_fraction":0.5},
		"generated_at":"2026-11-15T12:00:00Z","data_age_seconds":0,"plans_stale":false,"plans_age_seconds":null,
		"total":0,"tenants":[],"next_cursor":null}`
	listEx := func(query string) exchange {
		return exchange{method: "GET", path: "/api/v1/tenants", query: query, status: 200, header: jsonHdr, body: []byte(goodList)}
	}
	yamlEx := func(body string) exchange {
		return exchange{method: "GET", path: "/api/v1/openapi.yaml", status: 200,
			header: http.Header{"Content-Type": {"application/yaml"}}, body: []byte(body)}
	}
	allow := http.Header{"Content-Type": {"application/problem+json"}, "Allow": {"GET"}}
	notAllowed := []byte(`{"type":"about:blank","title":"Method Not Allowed","status":405}`)
	valid := []exchange{
		usageEx(goodUsage),
		listEx("limit=1000&min_percentage=80&limit_type=users"),
		yamlEx("openapi: 3.0.3\n"),
		{method: "POST", path: "/api/v1/plans", status: 405, header: allow, body: notAllowed},
		{method: "HEAD", path: "/api/v1/plans", status: 405, header: allow},
		{method: "GET", path: "/api/v1/tenants/a%2Fb/usage", status: 404, header: problemHdr,
			body: []byte(`{"type":"urn:billing-exporter:problem:unknown-tenant","title":"x","status":404}`)},
	}
	for _, ex := range valid {
		if _, errs := doc.check(ex); len(errs) > 0 {
			t.Fatalf("a valid exchange is rejected: %s: %v", ex, errs)
		}
	}
	cases := []struct {
		name string
		ex   exchange
	}{
		{"undocumented status", exchange{method: "GET", path: "/api/v1/plans", status: 500, header: problemHdr, body: []byte(`{}`)}},
		{"unknown path answered 200", exchange{method: "GET", path: "/api/v1/secret", status: 200, header: jsonHdr, body: []byte(`{}`)}},
		{"other method answered 200", exchange{method: "POST", path: "/api/v1/plans", status: 200, header: jsonHdr, body: []byte(`{}`)}},
		{"405 without Allow", exchange{method: "POST", path: "/api/v1/plans", status: 405, header: problemHdr, body: notAllowed}},
		{"HEAD 405 without Allow", exchange{method: "HEAD", path: "/api/v1/plans", status: 405, header: problemHdr}},
		{"HEAD with a body", exchange{method: "HEAD", path: "/api/v1/plans", status: 405, header: allow, body: notAllowed}},
		{"405 with another Allow", exchange{method: "POST", path: "/api/v1/plans", status: 405,
			header: http.Header{"Content-Type": {"application/problem+json"}, "Allow": {"GET, POST"}}, body: notAllowed}},
		{"503 without Retry-After", exchange{method: "GET", path: "/api/v1/tenants/1/usage", status: 503, header: problemHdr,
			body: []byte(`{"type":"urn:billing-exporter:problem:usage-unavailable","title":"x","status":503}`)}},
		{"wrong content type", exchange{method: "GET", path: "/api/v1/tenants/1/usage", status: 404, header: jsonHdr,
			body: []byte(`{"type":"about:blank","title":"Not Found","status":404}`)}},
		{"unknown problem type", exchange{method: "GET", path: "/api/v1/nothing", status: 404, header: problemHdr,
			body: []byte(`{"type":"https://example.com/x","title":"Not Found","status":404}`)}},
		{"not JSON", usageEx(`{"tenant_id":`)},
		{"missing required property", usageEx(strings.Replace(goodUsage, `"tenant_id":"1",`, "", 1))},
		{"extra property", usageEx(strings.Replace(goodUsage, `"tenant_id":"1",`, `"tenant_id":"1","secret":1,`, 1))},
		{"null where not nullable", usageEx(strings.Replace(goodUsage, `"limits_known":true`, `"limits_known":null`, 1))},
		{"fraction in an integer", usageEx(strings.Replace(goodUsage, `"used":1,`, `"used":1.5,`, 1))},
		{"negative remaining", usageEx(strings.Replace(goodUsage, `"remaining":9`, `"remaining":-1`, 1))},
		{"string for a number", usageEx(strings.Replace(goodUsage, `"percentage":10`, `"percentage":"10"`, 1))},
		{"bad date-time", usageEx(strings.Replace(goodUsage, `"2026-11-15T12:00:00Z"`, `"yesterday"`, 1))},
		{"bad period id", usageEx(strings.Replace(goodUsage, `"202611"`, `"202613"`, 1))},
		{"extra metric property", usageEx(strings.Replace(goodUsage, `"used":1,`, `"used":1,"x":2,`, 1))},
		{"unavailable without its reason", usageEx(strings.Replace(goodUsage, `"unavailable":null`, `"unavailable":{"source":"redis"}`, 1))},
		{"limit 0 answered 200", listEx("limit=0")},
		{"limit above 1000 answered 200", listEx("limit=1001")},
		{"negative min_percentage answered 200", listEx("min_percentage=-1")},
		{"limit not an integer answered 200", listEx("limit=1.5")},
		{"YAML document not YAML", yamlEx("openapi: [3.0.3\n")},
	}
	for _, tc := range cases {
		_, errs := doc.check(tc.ex)
		if len(errs) == 0 {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		t.Logf("%s: %s", tc.name, strings.Join(errs, "; "))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
