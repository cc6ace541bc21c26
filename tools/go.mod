module github.com/billing-exporter/billing_exporter/tools

go 1.26.8

tool github.com/prometheus/promu

require (
	github.com/Masterminds/semver/v3 v3.2.1 // indirect
	github.com/alecthomas/kingpin/v2 v2.4.0 // indirect
	github.com/alecthomas/units v0.0.0-20211218093645-b94a6e3cc137 // indirect
	github.com/google/go-github/v25 v25.1.3 // indirect
	github.com/google/go-querystring v1.0.0 // indirect
	github.com/prometheus/common v0.52.3 // indirect
	github.com/prometheus/promu v0.17.0 // indirect
	github.com/xhit/go-str2duration/v2 v2.1.0 // indirect
	go.uber.org/atomic v1.11.0 // indirect
	golang.org/x/oauth2 v0.19.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
