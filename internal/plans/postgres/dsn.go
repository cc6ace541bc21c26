package postgres

import "strings"

// shapeProblem refuses URLs the driver would split inside the password,
// moving a piece of it into the host or database that errors print.
func shapeProblem(dsn string) string {
	scheme, rest, isURL := strings.Cut(dsn, "://")
	switch at := strings.Index(rest, "@"); {
	case !isURL:
	case scheme != "postgres" && scheme != "postgresql":
		return "the URL scheme is not postgres:// or postgresql://"
	case strings.Count(rest, "@") > 1:
		return "URL form: more than one @ (write an @ in the user, password or a value as %40)"
	case at >= 0 && strings.Contains(rest[:at], "/"):
		return "URL form: a / before the @ (write a / in the user or password as %2F)"
	}
	return ""
}

// parseProblems maps the driver's wording to ours; the first match wins.
var parseProblems = []struct{ driver, ours string }{
	{"NUL byte", "it holds a NUL byte"},
	{"unterminated quoted string", "key=value form: a quoted value has no closing quote"},
	{`missing "="`, "key=value form: a word without = (quote a value holding spaces, password='a b', or escape them, a\\ b)"},
	{"invalid keyword/value", "key=value form: a word without = (or the text is neither a postgres:// URL nor key=value pairs)"},
	{"spaces", "URL form: a space (write it as %20)"},
	{"percent-encoded", "URL form: a % not followed by two hex digits (write a % as %25)"},
	{"invalid URL escape", "URL form: a % not followed by two hex digits (write a % as %25)"},
	{"IPv6", "URL form: an IPv6 host without its closing ]"},
	{"failed to parse as URL", "URL form: the URL does not parse (percent-encode @ : / ? # in the user or password)"},
	{"invalid port", "the port is not a number from 1 to 65535"},
	{"port numbers", "the ports do not match the hosts"},
	{"failed to configure TLS", "the TLS settings (sslmode, sslrootcert, sslcert, sslkey, sslpassword) are invalid or name an unreadable file"},
	{"sslcertmode", "sslcertmode is invalid"},
	{"connect_timeout", "connect_timeout is not a whole number of seconds"},
	{"service", "the service or service file cannot be read"},
	{"target_session_attrs", "target_session_attrs has an unknown value"},
	{"protocol_version", "min_protocol_version or max_protocol_version is invalid"},
	{"channel_binding", "channel_binding has an unknown value"},
	{"require_auth", "require_auth is invalid"},
	{"cache_capacity", "statement_cache_capacity or description_cache_capacity is not a number"},
	{"default_query_exec_mode", "default_query_exec_mode has an unknown value"},
}

func parseProblem(err error) string {
	msg := err.Error()
	// The driver writes "cannot parse `DSN`: problem".
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	for _, p := range parseProblems {
		if strings.Contains(msg, p.driver) {
			return p.ours
		}
	}
	return "a setting is invalid"
}

// runtimeParams are the server settings a DSN may carry: the server's
// refusal of another key quotes it.
var runtimeParams = map[string]bool{
	"application_name": true, "search_path": true, "timezone": true, "options": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"client_encoding": true, "datestyle": true, "intervalstyle": true, "extra_float_digits": true,
	"default_transaction_read_only": true, "work_mem": true,
}

func runtimeParamProblem(params map[string]string) string {
	for k := range params {
		if !runtimeParams[strings.ToLower(k)] {
			return "an unknown key (see docs/plans-query.md for the keys accepted)"
		}
	}
	return ""
}
