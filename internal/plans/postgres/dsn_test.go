package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
)

// MalformedDSNs are DSNs whose password is written wrongly, each holding the
// marker Tail2222 after the mistake; the root package's test uses them too.
var malformedDSNs = []struct{ name, dsn, password string }{
	{"key=value, unescaped space", `host=127.0.0.1 port=1 user=u password=Kx9Vq Tail2222 dbname=x`, "Kx9Vq Tail2222"},
	{"key=value, space after key", `host=127.0.0.1 port=1 password Kx9Vq-Tail2222`, "Kx9Vq-Tail2222"},
	{"key=value, unterminated quote", `host=127.0.0.1 port=1 user=u password='Kx9Vq Tail2222 dbname=x`, "Kx9Vq Tail2222"},
	{"key=value, double quotes", `host=127.0.0.1 port=1 password="Kx9Vq Tail2222" dbname=x`, "Kx9Vq Tail2222"},
	{"key=value, quote inside", `host=127.0.0.1 port=1 password=Kx9Vq 'Tail2222=x`, "Kx9Vq 'Tail2222=x"},
	{"key=value, = in a stray word", `host=127.0.0.1 port=1 password=Kx9Vq Tail2222=x`, "Kx9Vq Tail2222=x"},
	{"key=value, bad port", `host=127.0.0.1 port=nope user=u password='Kx9Vq\ Tail2222'`, `Kx9Vq\ Tail2222`},
	{"URL, @ in password", `postgres://u:Kx9Vq@Tail2222@127.0.0.1:1/x`, "Kx9Vq@Tail2222"},
	{"URL, : and @ in password", `postgres://u:Kx9Vq:Tail@2222@127.0.0.1:1/x`, "Kx9Vq:Tail@2222"},
	{"URL, / in password", `postgres://u:Kx9Vq/Tail2222@127.0.0.1:1/x`, "Kx9Vq/Tail2222"},
	{"URL, digits and / in password", `postgres://u:5432/Tail2222@127.0.0.1:1/x`, "5432/Tail2222"},
	{"URL, bad percent-encoding", `postgres://u:Kx9Vq%zzTail2222@127.0.0.1:1/x`, "Kx9Vq%zzTail2222"},
	{"URL, short percent-encoding", `postgres://u:Kx9Vq%2Tail2222@127.0.0.1:1/x`, "Kx9Vq%2Tail2222"},
	{"URL, space in password", `postgres://u:Kx9Vq Tail2222@127.0.0.1:1/x`, "Kx9Vq Tail2222"},
	{"URL, bad port", `postgres://u:Kx9Vq"Tail2222@127.0.0.1:nope/x`, `Kx9Vq"Tail2222`},
	{"URL, password in the query", `postgres://u@127.0.0.1:1/x?password=Kx9Vq&Tail2222`, "Kx9Vq&Tail2222"},
	{"URL, password in the query, stray key", `postgres://u@127.0.0.1:1/x?password=Kx9Vq&Tail2222=1`, "Kx9Vq&Tail2222=1"},
	{"URL, unclosed IPv6", `postgres://u:Kx9Vq-Tail2222@[::1/x`, "Kx9Vq-Tail2222"},
	{"URL, bad sslmode", `postgres://u:Kx9Vq-Tail2222@127.0.0.1:1/x?sslmode=Tail2222`, "Kx9Vq-Tail2222"},
	{"other scheme", `mysql://u:Kx9Vq-Tail2222@127.0.0.1/x`, "Kx9Vq-Tail2222"},
}

// leaked returns the first piece of password (four characters or more) in text.
func leaked(text, password string) string {
	for n := 4; n <= len(password); n++ {
		for i := 0; i+n <= len(password); i++ {
			if p := password[i : i+n]; strings.Contains(text, p) {
				return p
			}
		}
	}
	return ""
}

func TestMalformedDSNRefusedWithoutItsText(t *testing.T) {
	for _, tc := range malformedDSNs {
		t.Run(tc.name, func(t *testing.T) {
			err := postgres.CheckDSN("/run/secrets/dsn", tc.dsn)
			if err == nil {
				t.Fatal("accepted")
			}
			if p := leaked(err.Error(), tc.password); p != "" {
				t.Errorf("error shows %q: %v", p, err)
			}
			if !strings.Contains(err.Error(), "/run/secrets/dsn") {
				t.Errorf("error does not name the file: %v", err)
			}
			_, err = postgres.Open("/run/secrets/dsn", func() (string, error) { return tc.dsn, nil })
			if err == nil {
				t.Fatal("Open accepted it")
			}
			if p := leaked(err.Error(), tc.password); p != "" {
				t.Errorf("Open's error shows %q: %v", p, err)
			}
		})
	}
}

// TestOddButValidDSNNeverShown: passwords the driver reads whole, used
// against a closed port.
func TestOddButValidDSNNeverShown(t *testing.T) {
	for _, tc := range []struct{ dsn, password string }{
		{`host=127.0.0.1 port=1 user=u password=PgEscaped\ Tail2222 connect_timeout=2`, `PgEscaped\ Tail2222`},
		{`postgres://u:Kx9Vq:Tail2222@127.0.0.1:1/x?connect_timeout=2`, "Kx9Vq:Tail2222"},
		{`postgres://u:Kx9Vq%40Tail2222@127.0.0.1:1/x?connect_timeout=2`, "Kx9Vq%40Tail2222"},
		{`postgres://u:Kx9Vq?Tail2222@127.0.0.1:1/x?connect_timeout=2`, "Kx9Vq?Tail2222"},
		{`postgres://u:Kx9Vq#Tail2222@127.0.0.1:1/x?connect_timeout=2`, "Kx9Vq#Tail2222"},
	} {
		db, err := postgres.Open("dsn", func() (string, error) { return tc.dsn, nil })
		if err != nil {
			t.Errorf("%s: %v", tc.password, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = postgres.New(db).Load(ctx)
		cancel()
		db.Close()
		if err == nil {
			t.Fatal("no error from a server that is not there")
		}
		if p := leaked(err.Error(), tc.password); p != "" {
			t.Errorf("error shows %q: %v", p, err)
		}
	}
}

func TestDSNRuntimeParams(t *testing.T) {
	if err := postgres.CheckDSN("dsn", "postgres://u@h/db?application_name=x&search_path=a&statement_timeout=5s"); err != nil {
		t.Errorf("known server settings refused: %v", err)
	}
	if err := postgres.CheckDSN("dsn", "host=h bogus_setting=1"); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("unknown key: %v", err)
	}
}
