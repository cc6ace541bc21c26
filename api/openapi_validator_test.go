package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file is a small validator for the subset of OpenAPI 3.0 that
// openapi.yaml uses: $ref, type, nullable, required, properties,
// additionalProperties, enum, items, format date-time, minimum, maximum,
// minLength, pattern, and response headers marked required. A schema
// keyword outside that subset is reported as an error rather than ignored,
// so the document cannot grow a constraint the tests do not check.

// schemaKeywords are the keywords the validator understands. Annotations
// (description, default) change nothing in validation.
var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "nullable": true, "required": true, "properties": true,
	"additionalProperties": true, "enum": true, "items": true, "format": true,
	"minimum": true, "maximum": true, "minLength": true, "pattern": true,
	"description": true, "default": true,
}

type openAPIDoc struct {
	root map[string]any
}

func parseOpenAPI(data []byte) (*openAPIDoc, error) {
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		return nil, fmt.Errorf("openapi.yaml: version %q, the validator knows 3.0.x", v)
	}
	return &openAPIDoc{root: root}, nil
}

// pointer resolves a local JSON pointer such as
// "#/components/schemas/Problem".
func (d *openAPIDoc) pointer(ref string) (map[string]any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var node any = d.root
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q: %q is not in an object", ref, tok)
		}
		if node, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q: no %q", ref, tok)
		}
	}
	m, ok := node.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q is not an object", ref)
	}
	return m, nil
}

// deref follows $ref chains.
func (d *openAPIDoc) deref(node map[string]any) (map[string]any, error) {
	for i := 0; i < 16; i++ {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node, nil
		}
		var err error
		if node, err = d.pointer(ref); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("$ref chain too long")
}

func (d *openAPIDoc) paths() map[string]any {
	p, _ := d.root["paths"].(map[string]any)
	return p
}

func (d *openAPIDoc) component(kind, name string) map[string]any {
	m, err := d.pointer("#/components/" + kind + "/" + name)
	if err != nil {
		panic(err)
	}
	return m
}

// findPath returns the template of the documented path that matches an
// escaped request path, segment by segment ({name} matches any one
// segment; literals compare after unescaping, as the router does).
func (d *openAPIDoc) findPath(escaped string) (string, bool) {
	segs := strings.Split(escaped, "/")
	for tmpl := range d.paths() {
		tsegs := strings.Split(tmpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				continue
			}
			s, err := url.PathUnescape(segs[i])
			if err != nil || s != ts {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, true
		}
	}
	return "", false
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

// check validates one exchange and returns its problems and which
// documented response it exercised.
func (d *openAPIDoc) check(e exchange) (responseKey, []string) {
	var resp map[string]any
	var key responseKey
	status := strconv.Itoa(e.status)
	tmpl, found := d.findPath(e.path)
	var op map[string]any
	if found {
		item, _ := d.paths()[tmpl].(map[string]any)
		op, _ = item[strings.ToLower(e.method)].(map[string]any)
	}
	switch {
	case op != nil:
		// A documented operation must list every status it answers,
		// 414 included.
		responses, _ := op["responses"].(map[string]any)
		r, ok := responses[status].(map[string]any)
		if !ok {
			return key, []string{fmt.Sprintf("status %d is not documented for %s %s", e.status, e.method, tmpl)}
		}
		resp, key = r, responseKey{tmpl, strings.ToLower(e.method), status}
	case e.status == http.StatusRequestURITooLong:
		// Anywhere else under /api/: components/responses/URITooLong.
		resp, key = d.component("responses", "URITooLong"), responseKey{"*", "*", status}
	case !found:
		if e.status != http.StatusNotFound {
			return key, []string{fmt.Sprintf("undocumented path answered %d, want 404", e.status)}
		}
		resp, key = d.component("responses", "NotFound"), responseKey{"*", "*", status}
	default:
		if e.status != http.StatusMethodNotAllowed {
			return key, []string{fmt.Sprintf("undocumented method on %s answered %d, want 405", tmpl, e.status)}
		}
		resp, key = d.component("responses", "MethodNotAllowed"), responseKey{"*", "other-method", status}
	}
	resp, err := d.deref(resp)
	if err != nil {
		return key, []string{err.Error()}
	}
	return key, d.checkResponse(resp, e)
}

func (d *openAPIDoc) checkResponse(resp map[string]any, e exchange) []string {
	var errs []string
	headers, _ := resp["headers"].(map[string]any)
	for name, h := range headers {
		hm, _ := h.(map[string]any)
		v := e.header.Get(name)
		if req, _ := hm["required"].(bool); req && v == "" {
			errs = append(errs, fmt.Sprintf("required header %s is missing", name))
			continue
		}
		if v == "" {
			continue
		}
		if schema, ok := hm["schema"].(map[string]any); ok {
			errs = append(errs, d.validate(schema, v, "header "+name)...)
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(e.body) > 0 {
			errs = append(errs, "a body where the document has no content")
		}
		return errs
	}
	ct := e.header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return append(errs, fmt.Sprintf("content type %q: %v", ct, err))
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		return append(errs, fmt.Sprintf("content type %q is not documented (want one of %v)", mt, sortedKeys(content)))
	}
	if e.method == http.MethodHead {
		if len(e.body) > 0 {
			errs = append(errs, "HEAD response with a body")
		}
		return errs
	}
	schema, _ := media["schema"].(map[string]any)
	var value any
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		dec := json.NewDecoder(bytes.NewReader(e.body))
		dec.UseNumber()
		if err := dec.Decode(&value); err != nil {
			return append(errs, fmt.Sprintf("body is not JSON: %v", err))
		}
		if dec.More() {
			return append(errs, "body holds more than one JSON value")
		}
	case mt == "application/yaml":
		var doc any
		if err := yaml.Unmarshal(e.body, &doc); err != nil {
			return append(errs, fmt.Sprintf("body is not YAML: %v", err))
		}
		value = string(e.body)
	default:
		return append(errs, fmt.Sprintf("the validator cannot read %s", mt))
	}
	return append(errs, d.validate(schema, value, "body")...)
}

// validate checks value (decoded with json.Number for numbers) against a
// schema.
func (d *openAPIDoc) validate(schema map[string]any, value any, at string) []string {
	schema, err := d.deref(schema)
	if err != nil {
		return []string{at + ": " + err.Error()}
	}
	var errs []string
	for k := range schema {
		if !schemaKeywords[k] {
			errs = append(errs, fmt.Sprintf("%s: schema keyword %q is outside the validator's subset", at, k))
		}
	}
	if value == nil {
		if nullable, _ := schema["nullable"].(bool); !nullable {
			errs = append(errs, at+": null where the schema is not nullable")
		}
		return errs
	}
	if enum, ok := schema["enum"].([]any); ok && !enumContains(enum, value) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, value, enum))
	}
	typ, _ := schema["type"].(string)
	switch typ {
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want an object", at, value))
		}
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: required property %q is missing", at, r))
				}
			}
		}
		for _, name := range sortedKeys(obj) {
			if ps, ok := props[name].(map[string]any); ok {
				errs = append(errs, d.validate(ps, obj[name], at+"."+name)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: property %q is not in the schema", at, name))
				}
			case map[string]any:
				errs = append(errs, d.validate(ap, obj[name], at+"."+name)...)
			}
		}
	case "array":
		arr, ok := value.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want an array", at, value))
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, v := range arr {
				errs = append(errs, d.validate(items, v, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case "string":
		s, ok := value.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want a string", at, value))
		}
		if n, ok := schema["minLength"].(int); ok && len([]rune(s)) < n {
			errs = append(errs, fmt.Sprintf("%s: shorter than %d", at, n))
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", at, s, p))
		}
		if f, _ := schema["format"].(string); f == "date-time" {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an RFC 3339 date-time", at, s))
			}
		}
	case "integer", "number":
		n, ok := value.(json.Number)
		if !ok {
			return append(errs, fmt.Sprintf("%s: %T, want a %s", at, value, typ))
		}
		f, err := n.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return append(errs, fmt.Sprintf("%s: %q is not a finite number", at, n))
		}
		if typ == "integer" {
			if _, err := n.Int64(); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not an integer", at, n))
			}
		}
		if m, ok := number(schema["minimum"]); ok && f < m {
			errs = append(errs, fmt.Sprintf("%s: %v is below the minimum %v", at, f, m))
		}
		if m, ok := number(schema["maximum"]); ok && f > m {
			errs = append(errs, fmt.Sprintf("%s: %v is above the maximum %v", at, f, m))
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a boolean", at, value))
		}
	case "":
		errs = append(errs, at+": schema without a type")
	default:
		errs = append(errs, fmt.Sprintf("%s: unknown type %q", at, typ))
	}
	return errs
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func enumContains(enum []any, value any) bool {
	for _, e := range enum {
		switch ev := e.(type) {
		case string:
			if s, ok := value.(string); ok && s == ev {
				return true
			}
		default:
			f, ok1 := number(e)
			n, ok2 := value.(json.Number)
			if ok1 && ok2 {
				if g, err := n.Float64(); err == nil && g == f {
					return true
				}
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// documentedResponses lists every response the document promises, for the
// coverage check: each (path, method, status), plus the shared ones.
func (d *openAPIDoc) documentedResponses() []responseKey {
	var out []responseKey
	for tmpl, item := range d.paths() {
		for method, op := range item.(map[string]any) {
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			for status := range responses {
				out = append(out, responseKey{tmpl, method, status})
			}
		}
	}
	out = append(out, responseKey{"*", "*", "404"}, responseKey{"*", "other-method", "405"})
	slices.SortFunc(out, func(a, b responseKey) int {
		return strings.Compare(a.path+" "+a.method+" "+a.status, b.path+" "+b.method+" "+b.status)
	})
	return out
}

// walkSchemas calls fn on every schema in the document (components,
// parameters, response content and headers), so that the document's
// keywords can be checked even where no response exercises them.
func (d *openAPIDoc) walkSchemas(fn func(at string, schema map[string]any)) {
	var walk func(at string, s map[string]any)
	walk = func(at string, s map[string]any) {
		fn(at, s)
		if props, ok := s["properties"].(map[string]any); ok {
			for name, p := range props {
				walk(at+".properties."+name, p.(map[string]any))
			}
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			walk(at+".additionalProperties", ap)
		}
		if items, ok := s["items"].(map[string]any); ok {
			walk(at+".items", items)
		}
	}
	comps, _ := d.root["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	for name, s := range schemas {
		walk("components.schemas."+name, s.(map[string]any))
	}
	walkResponse := func(at string, r map[string]any) {
		if content, ok := r["content"].(map[string]any); ok {
			for mt, m := range content {
				if s, ok := m.(map[string]any)["schema"].(map[string]any); ok {
					walk(at+".content."+mt, s)
				}
			}
		}
		if headers, ok := r["headers"].(map[string]any); ok {
			for name, h := range headers {
				if s, ok := h.(map[string]any)["schema"].(map[string]any); ok {
					walk(at+".headers."+name, s)
				}
			}
		}
	}
	responses, _ := comps["responses"].(map[string]any)
	for name, r := range responses {
		walkResponse("components.responses."+name, r.(map[string]any))
	}
	for tmpl, item := range d.paths() {
		for method, op := range item.(map[string]any) {
			opm := op.(map[string]any)
			params, _ := opm["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if s, ok := pm["schema"].(map[string]any); ok {
					walk(fmt.Sprintf("%s %s parameter %v", method, tmpl, pm["name"]), s)
				}
			}
			rs, _ := opm["responses"].(map[string]any)
			for status, r := range rs {
				walkResponse(fmt.Sprintf("%s %s %s", method, tmpl, status), r.(map[string]any))
			}
		}
	}
}

// TestValidatorRejects: the validator has teeth. Each crafted exchange
// (never sent by the API) breaks the document in one way.
func TestValidatorRejects(t *testing.T) {
	doc, err := parseOpenAPI(openapiYAML)
	if err != nil {
		t.Fatal(err)
	}
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	problemHdr := http.Header{"Content-Type": {"application/problem+json"}}
	goodUsage := `{"tenant_id":"1","generated_at":"2026-11-15T12:00:00Z",
		"period":{"id":"202611","start":"2026-11-01T00:00:00Z","end":"2026-12-01T00:00:00Z","elapsed_fraction":0.5},
		"plan":null,"using_defaults":true,"limits_known":true,"plans_stale":false,"plans_age_seconds":null,"usage_recorded":true,
		"metrics":{"messages":{"used":1,"unavailable":null,"limit":10,"remaining":9,"exceeded":false,"percentage":10,"monthly_reset":true,"projected":null,"projected_percentage":null}}}`
	usageEx := func(body string) exchange {
		return exchange{method: "GET", path: "/api/v1/tenants/1/usage", status: 200, header: jsonHdr, body: []byte(body)}
	}
	if _, errs := doc.check(usageEx(goodUsage)); len(errs) > 0 {
		t.Fatalf("the valid usage body is rejected: %v", errs)
	}
	cases := []struct {
		name string
		ex   exchange
	}{
		{"undocumented status", exchange{method: "GET", path: "/api/v1/plans", status: 500, header: problemHdr, body: []byte(`{}`)}},
		{"unknown path answered 200", exchange{method: "GET", path: "/api/v1/secret", status: 200, header: jsonHdr, body: []byte(`{}`)}},
		{"other method answered 200", exchange{method: "POST", path: "/api/v1/plans", status: 200, header: jsonHdr, body: []byte(`{}`)}},
		{"405 without Allow", exchange{method: "POST", path: "/api/v1/plans", status: 405, header: problemHdr,
			body: []byte(`{"type":"about:blank","title":"Method Not Allowed","status":405}`)}},
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
	}
	for _, tc := range cases {
		if _, errs := doc.check(tc.ex); len(errs) == 0 {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
