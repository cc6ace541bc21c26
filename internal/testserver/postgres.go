package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/billing-exporter/billing_exporter/internal/testserver/pgbin"
)

// Postgres is a PostgreSQL cluster started for one test: its own data
// directory, a free loopback port, trust authentication and no fsync.
type Postgres struct {
	t    TB
	bin  string // directory holding initdb, pg_ctl and postgres
	dir  string // base directory, owned by the server's OS user
	data string
	Port int
	cred *syscall.Credential // nil: run as the current user

	mu      sync.Mutex
	running bool
}

// StartPostgres creates and starts a cluster; it is stopped and its files
// removed at test cleanup. The superuser is "postgres" with no password.
//
// initdb refuses to run as root, so when the test runs as root the server
// runs as the "postgres" OS user (which the Debian package creates), in a
// directory that user can reach.
func StartPostgres(t TB) *Postgres {
	t.Helper()
	bin, err := pgbin.BinDir()
	if err != nil {
		t.Fatalf("%v: make test installs it", err)
	}
	cred, err := pgbin.Credential()
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{t: t, bin: bin, cred: cred}
	p.dir = p.makeBaseDir()
	t.Cleanup(p.cleanup)
	p.data = filepath.Join(p.dir, "data")
	p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	// The port is picked after initdb (seconds, during which another
	// test's outgoing connection may take any free port), and picked
	// again when the server still finds it taken: FreePort can only say it
	// was free a moment ago.
	for attempt := 1; ; attempt++ {
		p.Port = pickPort(t)
		p.configure()
		err := p.start()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(string(p.log()), "could not create any TCP/IP sockets") {
			t.Fatalf("postgres on 127.0.0.1:%d: %v\n%s", p.Port, err, p.log())
		}
		if err := os.Remove(p.logFile()); err != nil {
			t.Fatalf("postgres log: %v", err)
		}
	}
	return p
}

// DSN is the URL of the "postgres" database.
func (p *Postgres) DSN() string { return p.DatabaseDSN("postgres") }

// DatabaseDSN is the URL of the named database on this server.
func (p *Postgres) DatabaseDSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// CreateDatabase creates an empty database and returns its DSN, so that the
// cases of a table-driven test can share one server without sharing data.
func (p *Postgres) CreateDatabase(name string) string {
	p.t.Helper()
	p.Exec(`CREATE DATABASE "` + strings.ReplaceAll(name, `"`, `""`) + `"`)
	return p.DatabaseDSN(name)
}

// Start (re)starts the server on its port and data directory; data written
// before Stop is still there.
func (p *Postgres) Start() {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatalf("postgres on 127.0.0.1:%d: %v\n%s", p.Port, err, p.log())
	}
}

func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return nil
	}
	if out, err := p.command("pg_ctl", "start", "-w", "-t", "60", "-D", p.data, "-l", p.logFile()).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	p.running = true
	return waitFor(10*time.Second, func() error {
		db, err := p.open(p.DSN())
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
}

// Stop shuts the server down (fast mode: clients are disconnected at once)
// and waits until it has exited.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return
	}
	if out, err := p.command("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", p.data).CombinedOutput(); err != nil {
		p.t.Errorf("pg_ctl stop: %v\n%s", err, out)
		return
	}
	p.running = false
}

// Exec runs SQL, which may hold several statements, on the "postgres"
// database and fails the test on error.
func (p *Postgres) Exec(query string) { p.t.Helper(); p.ExecDSN(p.DSN(), query) }

// ExecDSN runs SQL on the database at dsn (from CreateDatabase).
func (p *Postgres) ExecDSN(dsn, query string) {
	p.t.Helper()
	// A fresh connection each time: a pooled one would not survive a
	// Stop/Start of the server.
	db, err := p.open(dsn)
	if err != nil {
		p.t.Fatalf("connect to test postgres: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Without arguments pgx uses the simple protocol, which accepts several
	// statements in one string: a whole .sql file.
	if _, err := db.ExecContext(ctx, query); err != nil {
		p.t.Fatalf("postgres exec: %v\n%s", err, query)
	}
}

// ExecFiles runs SQL files (such as examples/schema.sql) in order on the
// database at dsn.
func (p *Postgres) ExecFiles(dsn string, paths ...string) {
	p.t.Helper()
	for _, path := range paths {
		sqlText, err := os.ReadFile(path)
		if err != nil {
			p.t.Fatalf("read SQL file: %v", err)
		}
		p.ExecDSN(dsn, string(sqlText))
	}
}

// LoadSchema runs SQL files (by default none: pass examples/schema.sql and
// any data files) on the "postgres" database of pg.
func LoadSchema(t TB, pg *Postgres, paths ...string) {
	t.Helper()
	pg.ExecFiles(pg.DSN(), paths...)
}

func (p *Postgres) open(dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// configure appends the test settings to postgresql.conf. Only TCP on
// 127.0.0.1, and the unix socket in our own directory rather than
// /var/run/postgresql, which may not exist or belong to a system cluster.
func (p *Postgres) configure() {
	p.t.Helper()
	settings := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 50
log_min_messages = warning
`, p.Port, p.dir)
	conf := filepath.Join(p.data, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatalf("configure postgres: %v", err)
	}
	_, err = f.WriteString(settings)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.t.Fatalf("configure postgres: %v", err)
	}
}

func (p *Postgres) logFile() string { return filepath.Join(p.dir, "postgres.log") }

func (p *Postgres) log() []byte {
	b, _ := os.ReadFile(p.logFile())
	return b
}

// command prepares a server binary to run as the server's OS user.
func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

func (p *Postgres) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s\n%s", name, err, out, p.log())
	}
}

func (p *Postgres) cleanup() {
	p.Stop()
	if err := os.RemoveAll(p.dir); err != nil {
		p.t.Errorf("remove postgres directory: %v", err)
	}
}

// makeBaseDir creates a directory the server's OS user owns. t.TempDir is
// no good: its parents are created 0700 for the user running the test.
func (p *Postgres) makeBaseDir() string {
	p.t.Helper()
	parent, err := pgbin.TraversableTempDir()
	if err != nil {
		p.t.Fatal(err)
	}
	dir, err := os.MkdirTemp(parent, "billing-exporter-pg-")
	if err != nil {
		p.t.Fatalf("postgres directory: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		p.t.Fatalf("postgres directory: %v", err)
	}
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			p.t.Fatalf("postgres directory: %v", err)
		}
	}
	return dir
}
