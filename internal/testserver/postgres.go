package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// postgresPackage is what to install when the server binaries are missing.
const postgresPackage = "postgresql"

// Postgres is a PostgreSQL cluster started for one test: its own data
// directory, a free loopback port, trust authentication and no fsync.
type Postgres struct {
	t    testing.TB
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
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p := &Postgres{t: t, bin: postgresBinDir(t), Port: FreePort(t)}
	p.cred = postgresCredential(t)
	p.dir = p.makeBaseDir()
	t.Cleanup(p.cleanup)
	p.data = filepath.Join(p.dir, "data")
	p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	p.configure()
	p.Start()
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		return
	}
	p.run("pg_ctl", "start", "-w", "-t", "60", "-D", p.data, "-l", p.logFile())
	p.running = true
	err := waitFor(10*time.Second, func() error {
		db, err := p.open(p.DSN())
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
	if err != nil {
		p.t.Fatalf("postgres on 127.0.0.1:%d: %v\n%s", p.Port, err, p.log())
	}
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
func LoadSchema(t testing.TB, pg *Postgres, paths ...string) {
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
	parent, err := traversableTempDir()
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

// traversableTempDir returns os.TempDir, or /tmp when some parent of it
// cannot be entered by other users.
func traversableTempDir() (string, error) {
	for _, dir := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if worldTraversable(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no temporary directory that the postgres user can enter (tried %s, /tmp, /var/tmp)", os.TempDir())
}

func worldTraversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// postgresCredential returns the "postgres" OS user when running as root,
// and nil (run as ourselves) otherwise.
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, PostgreSQL needs the postgres OS user: install the Debian package %s (make test does): %v", postgresPackage, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("postgres OS user has non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// postgresBinDir finds the directory holding initdb, pg_ctl and postgres:
// Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH; the
// newest version wins. Otherwise PATH is searched.
func postgresBinDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, dir := range dirs {
		if hasPostgresBinaries(dir) {
			return dir
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(path); err == nil && hasPostgresBinaries(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
		if hasPostgresBinaries(filepath.Dir(path)) {
			return filepath.Dir(path)
		}
	}
	t.Fatalf("initdb and pg_ctl not found in /usr/lib/postgresql/*/bin or on PATH: install the Debian package %s (make test does)", postgresPackage)
	return ""
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func hasPostgresBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode()&fs.ModePerm&0o111 == 0 {
			return false
		}
	}
	return true
}
