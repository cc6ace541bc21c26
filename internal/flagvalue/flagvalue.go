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

type durationValue struct {
	name string
	d    *time.Duration
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not a duration (e.g. 500ms, 10s)", v.name, s)
	}
	if d < 0 {
		return fmt.Errorf("--%s: %q is negative", v.name, s)
	}
	*v.d = d
	return nil
}

func (v durationValue) String() string { return v.d.String() }

type intValue struct {
	name string
	n    *int
}

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not a whole number", v.name, s)
	}
	if n < 0 {
		return fmt.Errorf("--%s: %q is negative", v.name, s)
	}
	*v.n = n
	return nil
}

func (v intValue) String() string { return strconv.Itoa(*v.n) }

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
	app.Flag(name, help).Default(def).SetValue(durationValue{name: name, d: d})
}

// Int adds a non-negative whole-number flag.
func Int(app *kingpin.Application, name, help, def string, n *int) {
	app.Flag(name, help).Default(def).SetValue(intValue{name: name, n: n})
}

// Enum adds a flag that takes one of allowed.
func Enum(app *kingpin.Application, name, help, def string, s *string, allowed ...string) {
	app.Flag(name, help).Default(def).SetValue(enumValue{name: name, s: s, allowed: allowed})
}
