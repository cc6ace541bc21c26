package testserver

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

func TestPostgresRestartKeepsData(t *testing.T) {
	pg := StartPostgres(t)
	pg.Exec(`CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')`)
	pg.Stop()

	db, err := sql.Open("pgx", pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded while the server was stopped")
	}

	pg.Start()
	var got string
	if err := db.QueryRowContext(ctx, `SELECT v FROM kept`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "before restart" {
		t.Errorf("after restart got %q, want %q", got, "before restart")
	}
}

func TestPostgresDatabasesAreSeparate(t *testing.T) {
	pg := StartPostgres(t)
	a := pg.CreateDatabase("a")
	b := pg.CreateDatabase("b")
	pg.ExecDSN(a, `CREATE TABLE only_in_a (v int)`)
	pg.ExecDSN(b, `CREATE TABLE only_in_a (v int)`) // would fail if a and b were the same database
}
