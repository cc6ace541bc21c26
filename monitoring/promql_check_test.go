package monitoring

// Checks inside the shipped PromQL, on the syntax tree of Prometheus' own
// parser (github.com/prometheus/prometheus/promql/parser, a dependency of
// this test module only).

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var promqlParser = parser.NewParser(parser.Options{})

// grafanaDuration matches a Grafana variable standing for a duration inside
// a range or subquery ([$__rate_interval], [${__range}], [$__range:1m]).
var (
	bracketed       = regexp.MustCompile(`\[[^\]]*\]`)
	grafanaDuration = regexp.MustCompile(`\$\{?__[A-Za-z_]+(?::[^}]*)?\}?`)
)

// ParsePromQL parses expr with Prometheus' parser. A dashboard query
// parses as written: Grafana variables in label values are plain strings to
// PromQL, and those standing for a duration in brackets are replaced by 5m
// first.
func ParsePromQL(expr string) (parser.Expr, error) {
	concrete := bracketed.ReplaceAllStringFunc(expr, func(s string) string {
		return grafanaDuration.ReplaceAllString(s, "5m")
	})
	return promqlParser.ParseExpr(concrete)
}

// Selector is a vector selector of an expression: the metric name (from
// the name or an equality __name__ matcher) and its other matchers.
type Selector struct {
	Name     string
	Matchers []Matcher
}

// Matcher is one label matcher; Op is =, !=, =~ or !~.
type Matcher struct{ Name, Op, Value string }

var plainAlternatives = regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*(\|[A-Za-z_:][A-Za-z0-9_:]*)*$`)

// Selectors returns every vector selector of n, in the order they appear;
// one selecting {__name__=~"a|b"} counts as a selector of a and one of b.
func Selectors(n parser.Node) []Selector {
	var out []Selector
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		names := []string{vs.Name}
		var matchers []Matcher
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name != labels.MetricName:
				matchers = append(matchers, Matcher{Name: m.Name, Op: m.Type.String(), Value: m.Value})
			case m.Type == labels.MatchEqual:
				names = []string{m.Value}
			case m.Type == labels.MatchRegexp && plainAlternatives.MatchString(m.Value):
				// {__name__=~"a|b"}: a selector of each.
				names = strings.Split(m.Value, "|")
			}
		}
		for _, name := range names {
			out = append(out, Selector{Name: name, Matchers: matchers})
		}
		return nil
	})
	return out
}

// CheckHistogramQuantile rejects a histogram_quantile whose vector argument
// is not built from rate/irate/increase of a *_bucket range selector, with
// every aggregation on the way keeping the le label. The seed's
// histogram_quantile(0.95, billing_redis_operation_duration_seconds) is the
// mistake it exists for: that selects no series at all (the histogram's
// series are _bucket, _sum and _count) and even on a _bucket series would
// compute a quantile of cumulative counts since process start. What the
// parser rejects itself (argument count and types) is reported as its
// error.
func CheckHistogramQuantile(expr string) error {
	n, err := ParsePromQL(expr)
	if err != nil {
		return fmt.Errorf("cannot parse %q: %w", expr, err)
	}
	var errs []string
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		c, ok := n.(*parser.Call)
		if !ok || c.Func.Name != "histogram_quantile" {
			return nil
		}
		if err := checkBucketRate(c.Args[1]); err != nil {
			errs = append(errs, "histogram_quantile: "+err.Error())
		}
		return nil
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

func checkBucketRate(n parser.Expr) error {
	switch n := n.(type) {
	case *parser.ParenExpr:
		return checkBucketRate(n.Expr)
	case *parser.AggregateExpr:
		op := n.Op.String()
		if slices.Contains(n.Grouping, "le") == n.Without {
			if n.Without {
				return fmt.Errorf("%s without (%s) drops the le label the quantile needs", op, strings.Join(n.Grouping, ", "))
			}
			return fmt.Errorf("%s by (%s) drops the le label the quantile needs: aggregate by (le, ...)", op, strings.Join(n.Grouping, ", "))
		}
		if !slices.Contains([]string{"sum", "max", "min", "avg"}, op) {
			return fmt.Errorf("%s over buckets does not give a histogram", op)
		}
		return checkBucketRate(n.Expr)
	case *parser.Call:
		switch n.Func.Name {
		case "rate", "irate", "increase":
			ms, ok := n.Args[0].(*parser.MatrixSelector)
			if !ok {
				return fmt.Errorf("%s of something other than a range selector", n.Func.Name)
			}
			name := Selectors(ms.VectorSelector)[0].Name
			if !strings.HasSuffix(name, "_bucket") {
				return fmt.Errorf("%s(%s[...]) is not a rate of a _bucket series", n.Func.Name, name)
			}
			return nil
		}
		if slices.Contains(labelPreserving, n.Func.Name) && len(n.Args) > 0 {
			return checkBucketRate(n.Args[0])
		}
		return fmt.Errorf("%s(...) is not a rate of bucket series", n.Func.Name)
	case *parser.BinaryExpr:
		_, lNum := n.LHS.(*parser.NumberLiteral)
		_, rNum := n.RHS.(*parser.NumberLiteral)
		switch {
		case lNum && rNum:
			return fmt.Errorf("a number is not a histogram")
		case lNum:
			return checkBucketRate(n.RHS)
		case rNum:
			return checkBucketRate(n.LHS)
		}
		if vm := n.VectorMatching; vm != nil && slices.Contains(vm.MatchingLabels, "le") != vm.On {
			return fmt.Errorf("vector matching that ignores le")
		}
		if err := checkBucketRate(n.LHS); err != nil {
			return err
		}
		return checkBucketRate(n.RHS)
	case *parser.VectorSelector:
		name := Selectors(n)[0].Name
		if strings.HasSuffix(name, "_bucket") {
			return fmt.Errorf("%s is cumulative since the process started: take rate(%s[5m]) first", name, name)
		}
		return fmt.Errorf("%s is not a rate of a _bucket series (a classic histogram's quantile needs rate(%s_bucket[5m]) aggregated by le)", name, name)
	}
	return fmt.Errorf("not a rate of bucket series")
}
