package monitoring

// A small PromQL parser, enough to look inside the expressions this
// repository ships for known mistakes. Syntax validity itself is promtool's
// job (the project may not depend on github.com/prometheus/prometheus); this
// parser only has to understand valid expressions well enough to find
// selectors, aggregations and function calls.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber // numbers and durations outside brackets (offset 5m)
	tokString
	tokPunct // ( ) { } , and operators
	tokRange // the raw text between [ and ]
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func lexPromQL(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // comment to end of line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, token{tokString, s[i+1 : j], i})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [ at %d", i)
			}
			toks = append(toks, token{tokRange, strings.TrimSpace(s[i+1 : i+j]), i})
			i += j + 1
		case isIdentStart(c):
			j := i
			for j < len(s) && (isIdentStart(s[j]) || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, token{tokIdent, s[i:j], i})
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) || s[j] == '.' ||
				((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E') && !strings.ContainsAny(s[i:j], "xX"))) {
				j++
			}
			toks = append(toks, token{tokNumber, s[i:j], i})
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch two {
			case "==", "!=", "<=", ">=", "=~", "!~":
				toks = append(toks, token{tokPunct, two, i})
				i += 2
				continue
			}
			if !strings.ContainsRune("(){},+-*/%^<>=@", rune(c)) {
				return nil, fmt.Errorf("unexpected character %q at %d", c, i)
			}
			toks = append(toks, token{tokPunct, string(c), i})
			i++
		}
	}
	return append(toks, token{tokEOF, "", len(s)}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// Node is a parsed PromQL expression.
type Node interface{ node() }

type (
	// Selector is a vector selector, with Range set for a range vector
	// (x[5m]) and Subquery for x[5m:1m].
	Selector struct {
		Name     string
		Matchers []Matcher
		Range    string
		Subquery bool
	}
	Matcher struct{ Name, Op, Value string }
	// Aggregate is sum/avg/... with its grouping.
	Aggregate struct {
		Op       string
		Without  bool
		Grouping []string
		Args     []Node // the parameter (topk's k...) first, the vector last
	}
	Call struct {
		Name string
		Args []Node
	}
	Binary struct {
		Op          string
		LHS, RHS    Node
		On          bool // on(...) rather than ignoring(...)
		Matching    []string
		HasMatching bool
	}
	Unary struct {
		Op   string
		Expr Node
	}
	Paren struct{ Expr Node }
	// Subquery wraps an expression followed by [range:step].
	Subquery struct {
		Expr  Node
		Range string
	}
	NumberLit struct{ Text string }
	StringLit struct{ Text string }
)

func (*Selector) node()  {}
func (*Aggregate) node() {}
func (*Call) node()      {}
func (*Binary) node()    {}
func (*Unary) node()     {}
func (*Paren) node()     {}
func (*Subquery) node()  {}
func (*NumberLit) node() {}
func (*StringLit) node() {}

var aggregations = []string{"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
	"topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"}

var binaryPrec = map[string]int{
	"or": 1, "and": 2, "unless": 2,
	"==": 3, "!=": 3, "<": 3, ">": 3, "<=": 3, ">=": 3,
	"+": 4, "-": 4,
	"*": 5, "/": 5, "%": 5, "atan2": 5,
	"^": 6,
}

// durationRE accepts a PromQL duration, or a Grafana variable standing for
// one ($__rate_interval, ${__range}), so that dashboard queries parse as
// written.
var durationRE = regexp.MustCompile(`^(([0-9]+(ms|s|m|h|d|w|y))+|\$[A-Za-z0-9_]+|\$\{[A-Za-z0-9_]+\})$`)

type parser struct {
	toks []token
	i    int
	src  string
}

// ParsePromQL parses expr. It understands the PromQL this repository uses
// (selectors, aggregations, calls, binary operators with matching, ranges,
// subqueries, offset) and reports anything else as an error.
func ParsePromQL(expr string) (Node, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, src: expr}
	n, err := p.expr(1)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "unexpected %q after the expression", t.text)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("at %d: %s", t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) expect(text string) error {
	if t := p.next(); t.text != text || t.kind == tokString {
		return p.errorf(t, "expected %q, got %q", text, t.text)
	}
	return nil
}

func (p *parser) binaryOp() (string, int, bool) {
	t := p.peek()
	if t.kind != tokPunct && t.kind != tokIdent {
		return "", 0, false
	}
	op := t.text
	if t.kind == tokIdent {
		op = strings.ToLower(op)
	}
	prec, ok := binaryPrec[op]
	if !ok || (t.kind == tokIdent && !slices.Contains([]string{"and", "or", "unless", "atan2"}, op)) {
		return "", 0, false
	}
	return op, prec, true
}

func (p *parser) expr(minPrec int) (Node, error) {
	lhs, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec, ok := p.binaryOp()
		if !ok || prec < minPrec {
			return lhs, nil
		}
		p.next()
		b := &Binary{Op: op, LHS: lhs}
		if t := p.peek(); t.kind == tokIdent && strings.EqualFold(t.text, "bool") {
			p.next()
		}
		if t := p.peek(); t.kind == tokIdent && (strings.EqualFold(t.text, "on") || strings.EqualFold(t.text, "ignoring")) {
			p.next()
			b.HasMatching, b.On = true, strings.EqualFold(t.text, "on")
			if b.Matching, err = p.labelList(); err != nil {
				return nil, err
			}
			if t := p.peek(); t.kind == tokIdent && (strings.EqualFold(t.text, "group_left") || strings.EqualFold(t.text, "group_right")) {
				p.next()
				if p.peek().text == "(" {
					if _, err := p.labelList(); err != nil {
						return nil, err
					}
				}
			}
		}
		next := prec + 1
		if op == "^" { // right-associative
			next = prec
		}
		if b.RHS, err = p.expr(next); err != nil {
			return nil, err
		}
		lhs = b
	}
}

func (p *parser) unary() (Node, error) {
	if t := p.peek(); t.kind == tokPunct && (t.text == "-" || t.text == "+") {
		p.next()
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Unary{Op: t.text, Expr: e}, nil
	}
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	return p.postfix(n)
}

// postfix handles [range], [range:step], offset and @ after an operand.
func (p *parser) postfix(n Node) (Node, error) {
	for {
		t := p.peek()
		switch {
		case t.kind == tokRange:
			p.next()
			rng, step, isSub := strings.Cut(t.text, ":")
			if !durationRE.MatchString(strings.TrimSpace(rng)) || (isSub && step != "" && !durationRE.MatchString(strings.TrimSpace(step))) {
				return nil, p.errorf(t, "bad range [%s]", t.text)
			}
			if sel, ok := n.(*Selector); ok && sel.Range == "" && !isSub {
				sel.Range = rng
				continue
			}
			if !isSub {
				return nil, p.errorf(t, "range [%s] applied to an expression that is not a selector", t.text)
			}
			if sel, ok := n.(*Selector); ok && sel.Range == "" {
				sel.Range, sel.Subquery = rng, true
				continue
			}
			n = &Subquery{Expr: n, Range: rng}
		case t.kind == tokIdent && strings.EqualFold(t.text, "offset"):
			p.next()
			if p.peek().text == "-" {
				p.next()
			}
			if d := p.next(); !durationRE.MatchString(d.text) {
				return nil, p.errorf(d, "bad offset %q", d.text)
			}
		case t.kind == tokPunct && t.text == "@":
			p.next()
			if d := p.next(); d.kind != tokNumber && d.text != "start" && d.text != "end" {
				return nil, p.errorf(d, "bad @ modifier %q", d.text)
			} else if d.text == "start" || d.text == "end" {
				if err := p.expect("("); err != nil {
					return nil, err
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			}
		default:
			return n, nil
		}
	}
}

func (p *parser) primary() (Node, error) {
	t := p.next()
	switch t.kind {
	case tokNumber:
		return &NumberLit{Text: t.text}, nil
	case tokString:
		return &StringLit{Text: t.text}, nil
	case tokPunct:
		switch t.text {
		case "(":
			e, err := p.expr(1)
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return &Paren{Expr: e}, nil
		case "{":
			p.i--
			return p.selector("")
		}
	case tokIdent:
		name := t.text
		lower := strings.ToLower(name)
		switch lower {
		case "inf", "nan":
			return &NumberLit{Text: name}, nil
		}
		if slices.Contains(aggregations, lower) {
			if nt := p.peek(); nt.text == "(" || (nt.kind == tokIdent && (strings.EqualFold(nt.text, "by") || strings.EqualFold(nt.text, "without"))) {
				return p.aggregate(lower)
			}
		}
		if p.peek().text == "(" && p.peek().kind == tokPunct {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			return &Call{Name: name, Args: args}, nil
		}
		return p.selector(name)
	}
	return nil, p.errorf(t, "unexpected %q", t.text)
}

func (p *parser) aggregate(op string) (Node, error) {
	a := &Aggregate{Op: op}
	grouping := func() error {
		t := p.peek()
		if t.kind != tokIdent || !strings.EqualFold(t.text, "by") && !strings.EqualFold(t.text, "without") {
			return nil
		}
		p.next()
		a.Without = strings.EqualFold(t.text, "without")
		var err error
		a.Grouping, err = p.labelList()
		return err
	}
	if err := grouping(); err != nil {
		return nil, err
	}
	args, err := p.args()
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s() without an argument", op)
	}
	a.Args = args
	if a.Grouping == nil && !a.Without {
		if err := grouping(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (p *parser) args() ([]Node, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var args []Node
	for p.peek().text != ")" || p.peek().kind != tokPunct {
		e, err := p.expr(1)
		if err != nil {
			return nil, err
		}
		args = append(args, e)
		if p.peek().text == "," && p.peek().kind == tokPunct {
			p.next()
			continue
		}
		break
	}
	return args, p.expect(")")
}

func (p *parser) labelList() ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	labels := []string{}
	for {
		t := p.next()
		if t.kind == tokPunct && t.text == ")" {
			return labels, nil
		}
		if t.kind != tokIdent {
			return nil, p.errorf(t, "expected a label name, got %q", t.text)
		}
		labels = append(labels, t.text)
		switch t := p.next(); t.text {
		case ",":
		case ")":
			return labels, nil
		default:
			return nil, p.errorf(t, "expected , or ) in a label list, got %q", t.text)
		}
	}
}

func (p *parser) selector(name string) (Node, error) {
	s := &Selector{Name: name}
	if p.peek().text != "{" || p.peek().kind != tokPunct {
		return s, nil
	}
	p.next()
	for {
		t := p.next()
		if t.kind == tokPunct && t.text == "}" {
			break
		}
		if t.kind != tokIdent {
			return nil, p.errorf(t, "expected a label name in a selector, got %q", t.text)
		}
		op := p.next()
		if !slices.Contains([]string{"=", "!=", "=~", "!~"}, op.text) {
			return nil, p.errorf(op, "expected a matcher operator, got %q", op.text)
		}
		v := p.next()
		if v.kind != tokString {
			return nil, p.errorf(v, "expected a quoted label value, got %q", v.text)
		}
		if t.text == "__name__" && op.text == "=" {
			s.Name = v.text
		} else {
			s.Matchers = append(s.Matchers, Matcher{Name: t.text, Op: op.text, Value: v.text})
		}
		if n := p.peek(); n.kind == tokPunct && n.text == "," {
			p.next()
		}
	}
	if s.Name == "" && len(s.Matchers) == 0 {
		return nil, fmt.Errorf("empty selector {}")
	}
	return s, nil
}

// Walk calls fn for n and every node below it, depth first.
func Walk(n Node, fn func(Node)) {
	if n == nil {
		return
	}
	fn(n)
	switch n := n.(type) {
	case *Aggregate:
		for _, a := range n.Args {
			Walk(a, fn)
		}
	case *Call:
		for _, a := range n.Args {
			Walk(a, fn)
		}
	case *Binary:
		Walk(n.LHS, fn)
		Walk(n.RHS, fn)
	case *Unary:
		Walk(n.Expr, fn)
	case *Paren:
		Walk(n.Expr, fn)
	case *Subquery:
		Walk(n.Expr, fn)
	}
}

// Selectors returns every vector selector in n.
func Selectors(n Node) []*Selector {
	var out []*Selector
	Walk(n, func(n Node) {
		if s, ok := n.(*Selector); ok {
			out = append(out, s)
		}
	})
	return out
}

// CheckHistogramQuantile rejects a histogram_quantile whose vector argument
// is not built from rate/irate/increase of a *_bucket range selector, with
// every aggregation on the way keeping the le label. The seed's
// histogram_quantile(0.95, billing_redis_operation_duration_seconds) is the
// mistake it exists for: that selects no series at all (the histogram's
// series are _bucket, _sum and _count) and even on a _bucket series would
// compute a quantile of cumulative counts since process start.
func CheckHistogramQuantile(expr string) error {
	n, err := ParsePromQL(expr)
	if err != nil {
		return fmt.Errorf("cannot parse %q: %w", expr, err)
	}
	var errs []string
	Walk(n, func(n Node) {
		c, ok := n.(*Call)
		if !ok || c.Name != "histogram_quantile" {
			return
		}
		if len(c.Args) != 2 {
			errs = append(errs, fmt.Sprintf("histogram_quantile takes 2 arguments, got %d", len(c.Args)))
			return
		}
		if err := checkBucketRate(c.Args[1]); err != nil {
			errs = append(errs, "histogram_quantile: "+err.Error())
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// labelPreserving are functions whose result keeps the labels of their first
// (vector) argument.
var labelPreserving = []string{"label_replace", "label_join", "clamp", "clamp_min", "clamp_max",
	"abs", "ceil", "floor", "round", "sort", "sort_desc"}

func checkBucketRate(n Node) error {
	switch n := n.(type) {
	case *Paren:
		return checkBucketRate(n.Expr)
	case *Aggregate:
		keepsLe := slices.Contains(n.Grouping, "le") != n.Without
		if !keepsLe {
			if n.Without {
				return fmt.Errorf("%s without (%s) drops the le label the quantile needs", n.Op, strings.Join(n.Grouping, ", "))
			}
			return fmt.Errorf("%s by (%s) drops the le label the quantile needs: aggregate by (le, ...)", n.Op, strings.Join(n.Grouping, ", "))
		}
		if n.Op != "sum" && n.Op != "max" && n.Op != "min" && n.Op != "avg" {
			return fmt.Errorf("%s over buckets does not give a histogram", n.Op)
		}
		return checkBucketRate(n.Args[len(n.Args)-1])
	case *Call:
		switch n.Name {
		case "rate", "irate", "increase":
			if len(n.Args) != 1 {
				return fmt.Errorf("%s takes one argument", n.Name)
			}
			s, ok := n.Args[0].(*Selector)
			if !ok || s.Range == "" {
				return fmt.Errorf("%s of something other than a range selector", n.Name)
			}
			if !strings.HasSuffix(s.Name, "_bucket") {
				return fmt.Errorf("%s(%s[...]) is not a rate of a _bucket series", n.Name, s.Name)
			}
			return nil
		}
		if slices.Contains(labelPreserving, n.Name) && len(n.Args) > 0 {
			return checkBucketRate(n.Args[0])
		}
		return fmt.Errorf("%s(...) is not a rate of bucket series", n.Name)
	case *Binary:
		_, lNum := n.LHS.(*NumberLit)
		_, rNum := n.RHS.(*NumberLit)
		switch {
		case lNum && rNum:
			return fmt.Errorf("a number is not a histogram")
		case lNum:
			return checkBucketRate(n.RHS)
		case rNum:
			return checkBucketRate(n.LHS)
		}
		if n.HasMatching && slices.Contains(n.Matching, "le") != n.On {
			return fmt.Errorf("vector matching that ignores le")
		}
		if err := checkBucketRate(n.LHS); err != nil {
			return err
		}
		return checkBucketRate(n.RHS)
	case *Selector:
		if n.Range != "" {
			return fmt.Errorf("a range vector %s[%s] is not an instant histogram: wrap it in rate()", n.Name, n.Range)
		}
		if strings.HasSuffix(n.Name, "_bucket") {
			return fmt.Errorf("%s is cumulative since the process started: take rate(%s[5m]) first", n.Name, n.Name)
		}
		return fmt.Errorf("%s is not a rate of a _bucket series (a classic histogram's quantile needs rate(%s_bucket[5m]) aggregated by le)", n.Name, n.Name)
	}
	return fmt.Errorf("not a rate of bucket series")
}
