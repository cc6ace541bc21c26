// Package flagvalue holds kingpin flag values whose errors name the flag,
// which kingpin's own leave out.
package flagvalue

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// numberValue is a non-negative number; what names its form.
type numberValue[T ~int | ~int64] struct {
	name, what string
	p          *T
	parse      func(string) (T, error)
}

func (v numberValue[T]) Set(s string) error {
	n, err := v.parse(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not %s", v.name, s, v.what)
	}
	if n < 0 {
		return fmt.Errorf("--%s: %q is negative", v.name, s)
	}
	*v.p = n
	return nil
}

func (v numberValue[T]) String() string { return fmt.Sprint(*v.p) }

type enumValue struct {
	name    string
	s       *string
	allowed []string
}

func (v enumValue) Set(s string) error {
	if !slices.Contains(v.allowed, s) {
		return fmt.Errorf("--%s: %q is not one of %s", v.name, s, strings.Join(v.allowed, ", "))
	}
	*v.s = s
	return nil
}

func (v enumValue) String() string { return *v.s }

// Duration adds a non-negative duration flag.
func Duration(app *kingpin.Application, name, help, def string, d *time.Duration) {
	value := numberValue[time.Duration]{name: name, what: "a duration (e.g. 500ms, 10s)", p: d, parse: time.ParseDuration}
	app.Flag(name, help).Default(def).SetValue(value)
}

// Int adds a non-negative whole-number flag.
func Int(app *kingpin.Application, name, help, def string, n *int) {
	app.Flag(name, help).Default(def).SetValue(numberValue[int]{name: name, what: "a whole number", p: n, parse: strconv.Atoi})
}

// Enum adds a flag that takes one of allowed.
func Enum(app *kingpin.Application, name, help, def string, s *string, allowed ...string) {
	app.Flag(name, help).Default(def).SetValue(enumValue{name: name, s: s, allowed: allowed})
}
