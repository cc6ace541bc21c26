package flagvalue

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func TestValuesNameTheFlag(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string // "" for none
	}{
		{[]string{"--d=2s", "--n=3", "--e=b"}, ""},
		{[]string{"--d=soon"}, `--d: "soon" is not a duration`},
		{[]string{"--d=-1s"}, `--d: "-1s" is negative`},
		{[]string{"--n=x"}, `--n: "x" is not a whole number`},
		{[]string{"--n=-2"}, `--n: "-2" is negative`},
		{[]string{"--e=c"}, `--e: "c" is not one of a, b`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			app := kingpin.New("test", "")
			var d time.Duration
			var n int
			var e string
			Duration(app, "d", "", "1s", &d)
			Int(app, "n", "", "1", &n)
			Enum(app, "e", "", "a", &e, "a", "b")
			_, err := app.Parse(tc.args)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && (d != 2*time.Second || n != 3 || e != "b"):
				t.Errorf("d=%v n=%d e=%q", d, n, e)
			}
		})
	}
}
