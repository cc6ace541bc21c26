package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const systemdDir = "examples/systemd"

// unit is a parsed systemd unit file: section → key → values in order (a
// key may repeat).
type unit map[string]map[string][]string

// parseUnit reads a unit file as systemd.syntax(7) describes it: sections,
// Key=Value lines, # and ; comments, a trailing backslash continuing a
// line. Anything else is an error.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section, pending := unit{}, "", ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" || strings.TrimSpace(key) == "" {
			t.Fatalf("%s:%d: not a Key=Value line in a section: %q", path, n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending != "" {
		t.Fatalf("%s: ends in a continued line", path)
	}
	return u
}

// helpFlags returns the long flags the exporter's --help lists.
func helpFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--(\[no-\])?([a-z0-9][a-z0-9.-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[2]] = true
		if m[1] != "" {
			flags["no-"+m[2]] = true
		}
	}
	if !flags["web.listen-address"] {
		t.Fatalf("--help lists no --web.listen-address: the flag pattern does not match it:\n%s", out)
	}
	return flags
}

// TestSystemdUnits: the example units parse, carry the hardening and the
// socket activation they promise, pass only flags the exporter has and
// secrets only through files, and pass `systemd-analyze verify` where it
// is installed.
func TestSystemdUnits(t *testing.T) {
	service := parseUnit(t, filepath.Join(systemdDir, "billing_exporter.service"))
	socket := parseUnit(t, filepath.Join(systemdDir, "billing_exporter.socket"))
	const anyValue = "*"
	for _, r := range []struct {
		unit         unit
		section, key string
		want         string
		unitName     string
	}{
		{socket, "Socket", "ListenStream", anyValue, "socket"},
		{socket, "Install", "WantedBy", "sockets.target", "socket"},
		{service, "Unit", "Requires", "billing_exporter.socket", "service"},
		{service, "Service", "ExecStart", anyValue, "service"},
		{service, "Service", "ExecReload", "/bin/kill -HUP $MAINPID", "service"},
		{service, "Service", "DynamicUser", "yes", "service"},
		{service, "Service", "NoNewPrivileges", "yes", "service"},
		{service, "Service", "ProtectSystem", "strict", "service"},
		{service, "Service", "ProtectHome", "yes", "service"},
		{service, "Service", "PrivateTmp", "yes", "service"},
		{service, "Service", "PrivateDevices", "yes", "service"},
		{service, "Service", "CapabilityBoundingSet", "", "service"},
		{service, "Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6", "service"},
		{service, "Service", "SystemCallFilter", "@system-service", "service"},
		{service, "Service", "LoadCredential", anyValue, "service"},
	} {
		got, ok := r.unit[r.section][r.key]
		switch {
		case !ok:
			t.Errorf("%s: no %s= in [%s]", r.unitName, r.key, r.section)
		case r.want != anyValue && !slices.Contains(got, r.want):
			t.Errorf("%s: [%s] %s=%q, want %q", r.unitName, r.section, r.key, got, r.want)
		}
	}

	execStart := service["Service"]["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("ExecStart= %q, want one command", execStart)
	}
	args := strings.Fields(execStart[0])
	if args[0] != "/usr/local/bin/billing_exporter" {
		t.Errorf("ExecStart runs %q, want /usr/local/bin/billing_exporter", args[0])
	}
	known := helpFlags(t)
	credentials := map[string]bool{}
	for _, c := range service["Service"]["LoadCredential"] {
		name, _, _ := strings.Cut(c, ":")
		credentials[name] = true
	}
	for _, a := range args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !known[name] {
			t.Errorf("ExecStart passes %q, which is not a flag in --help", a)
			continue
		}
		// A secret reaches the exporter only as a file of its credentials.
		if name == "redis.password-file" || name == "postgres.dsn-file" {
			cred, ok := strings.CutPrefix(value, "%d/")
			if !ok || !credentials[cred] {
				t.Errorf("ExecStart %s=%s is not a LoadCredential= file (%%d/NAME)", name, value)
			}
		}
		if strings.Contains(value, "@") {
			t.Errorf("ExecStart %s carries credentials in its value", a)
		}
	}
	if !slices.Contains(args, "--web.systemd-socket") {
		t.Error("ExecStart does not pass --web.systemd-socket: the socket unit's listener goes unused")
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the units are checked by the table above only")
		return
	}
	// verify checks that the command exists: point it at the test's build.
	dir := t.TempDir()
	for _, name := range []string{"billing_exporter.service", "billing_exporter.socket"} {
		b, err := os.ReadFile(filepath.Join(systemdDir, name))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/billing_exporter", binary))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, "billing_exporter.socket"), filepath.Join(dir, "billing_exporter.service"))
	// Any warning (an unknown key, a bad value) fails, not only errors.
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
