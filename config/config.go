// Package config reads --config.file (see README.md); a mistake refuses it whole.
package config

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
	"github.com/billing-exporter/billing_exporter/internal/yamlfile"
)

// Config is the file configuration.
type Config struct {
	// PlansQuery replaces the default query if not empty.
	PlansQuery string
	// Defaults are the limits of planless tenants; nil when unset.
	Defaults    plans.Limits
	MetricTypes []usage.MetricType
	// Thresholds are ascending distinct percentages.
	Thresholds []float64
}

// Default returns the defaults.
func Default() *Config {
	return &Config{
		MetricTypes: slices.Clone(usage.DefaultMetricTypes),
		Thresholds:  slices.Clone(billing.DefaultThresholds),
	}
}

// MetricTypeNames returns the metric type names.
func (c *Config) MetricTypeNames() []string { return usage.MetricTypeNames(c.MetricTypes) }

type rawConfig struct {
	PlansQuery  *string             `yaml:"plans_query"`
	Defaults    *plans.FileDefaults `yaml:"defaults"`
	MetricTypes *[]rawMetricType    `yaml:"metric_types"`
	Thresholds  *[]float64          `yaml:"thresholds"`
}

type rawMetricType struct {
	Name         string `yaml:"name"`
	MonthlyReset bool   `yaml:"monthly_reset"`
}

const maxFileSize = 1 << 20

// Load reads a configuration file of at most 1 MiB.
func Load(path string) (*Config, error) {
	data, err := yamlfile.ReadFile(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parse(data, path)
}

func parse(data []byte, name string) (*Config, error) {
	var raw rawConfig
	doc, err := yamlfile.Decode(data, name, &raw)
	if err != nil {
		return nil, err
	}
	c := Default()
	if raw.PlansQuery != nil {
		if strings.TrimSpace(*raw.PlansQuery) == "" {
			return nil, doc.Errorf(doc.Line("plans_query"), "plans_query is empty; leave it out for the default query")
		}
		c.PlansQuery = *raw.PlansQuery
	}
	if raw.Defaults != nil {
		if c.Defaults, err = plans.ParseLimitsAt(doc, raw.Defaults.Limits, "defaults", "limits"); err != nil {
			return nil, err
		}
	}
	if raw.MetricTypes != nil {
		if len(*raw.MetricTypes) == 0 {
			return nil, doc.Errorf(doc.Line("metric_types"), "metric_types is empty; leave it out for the default list")
		}
		lines := map[string]int{}
		c.MetricTypes = make([]usage.MetricType, 0, len(*raw.MetricTypes))
		for i, mt := range *raw.MetricTypes {
			line := doc.Line("metric_types", i)
			if err := usage.ValidateMetricType(mt.Name); err != nil {
				return nil, doc.Errorf(line, "metric type %q: %v", mt.Name, err)
			}
			if first, dup := lines[mt.Name]; dup {
				return nil, doc.Errorf(line, "metric type %s listed twice (first on line %d)", mt.Name, first)
			}
			lines[mt.Name] = line
			c.MetricTypes = append(c.MetricTypes, usage.MetricType(mt))
		}
	}
	if raw.Thresholds != nil {
		if len(*raw.Thresholds) == 0 {
			return nil, doc.Errorf(doc.Line("thresholds"), "thresholds is empty; leave it out for the defaults")
		}
		for i, t := range *raw.Thresholds {
			if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
				return nil, doc.Errorf(doc.Line("thresholds", i), "threshold %v: must be a positive percentage", t)
			}
		}
		slices.Sort(*raw.Thresholds)
		c.Thresholds = slices.Compact(*raw.Thresholds)
	}
	return c, nil
}
