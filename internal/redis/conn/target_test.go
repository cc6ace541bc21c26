package conn

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"localhost:6379", Target{Address: "localhost:6379"}, false},
		{"127.0.0.1:7000", Target{Address: "127.0.0.1:7000"}, false},
		{"[::1]:6379", Target{Address: "[::1]:6379"}, false},
		{"redis://127.0.0.1", Target{Address: "127.0.0.1:6379"}, false},
		{"redis://:pw@127.0.0.1:7000/2", Target{Address: "127.0.0.1:7000", Password: "pw", DB: 2}, false},
		{"redis://pw@127.0.0.1:7000", Target{Address: "127.0.0.1:7000", Password: "pw", loneName: true}, false},
		{"redis://exporter:pw@127.0.0.1:7000/0", Target{Address: "127.0.0.1:7000", Username: "exporter", Password: "pw"}, false},
		{"rediss://h.example:6380", Target{Address: "h.example:6380", TLS: true}, false},
		{"localhost", Target{}, true},
		{"http://127.0.0.1:6379", Target{}, true},
		{"redis://", Target{}, true},
		{"redis://127.0.0.1/x", Target{}, true},
		{"redis://127.0.0.1/-1", Target{}, true},
		{"redis://127.0.0.1/?foo=bar", Target{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTargetErrorsAndStringHidePassword(t *testing.T) {
	for _, in := range []string{
		"redis://:topsecret@127.0.0.1:6379/x",
		"ftp://:topsecret@127.0.0.1",
		"redis://:topsecret@127.0.0.1/?a=b",
		"redis://:topsecret@%zz",
		"redis://topsecret@127.0.0.1/x", // the lone name is a password
		"A:topsecret@://0",              // opaque: found by FuzzParseTarget
		"A://#topsecret@",               // in the fragment: found by FuzzParseTarget
		"redis://u:12345#topsecret@127.0.0.1:6379",
		"redis://u:12#topsecret",
		"redis://u:12/topsecret@127.0.0.1:6379",
		"redis://u:12?topsecret@127.0.0.1:6379",
		"redis://u:pw%zztopsecret@127.0.0.1:6379",
		"redis://u:pw topsecret@127.0.0.1:6379",
		"topsecret",
		"topsecret:1:2",
	} {
		_, err := ParseTarget(in)
		if err == nil {
			t.Errorf("%q parsed", in)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error for %q reveals the password: %v", in, err)
		}
	}
	tg, err := ParseTarget("redis://user:topsecret@127.0.0.1:6379/3")
	if err != nil {
		t.Fatal(err)
	}
	if s := tg.String(); strings.Contains(s, "topsecret") || s != "redis://user@127.0.0.1:6379/3" {
		t.Errorf("String() = %q", s)
	}
}
