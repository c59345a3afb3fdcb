package serve

import (
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Roles
		str  string
		ok   bool
	}{
		{"all", Roles{true, true, true}, "all", true},
		{"log", Roles{Log: true}, "log", true},
		{"log,ca", Roles{Log: true, CA: true}, "log,ca", true},
		{"sequencer, log", Roles{Log: true, Sequencer: true}, "log,sequencer", true},
		{"log,sequencer,ca", Roles{true, true, true}, "all", true},
		{"", Roles{}, "", false},
		{"frontend", Roles{}, "", false},
		{"log,,ca", Roles{}, "", false},
	} {
		got, err := ParseRoles(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRoles(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			continue
		}
		if tc.ok && got.String() != tc.str {
			t.Errorf("ParseRoles(%q).String() = %q, want %q", tc.in, got.String(), tc.str)
		}
	}
}

func TestCheckRoles(t *testing.T) {
	const my = "mysql://u:p@127.0.0.1:3306/db"
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr string // "" for none
	}{
		{"the default", Options{Storage: "sqlite"}, ""},
		{"log on sqlite", Options{Storage: "sqlite", Roles: Roles{Log: true}}, "needs --storage mysql://"},
		{"log on mysql", Options{Storage: my, Roles: Roles{Log: true}}, ""},
		{"election without a sequencer", Options{Storage: my, Roles: Roles{Log: true}, Election: "etcd://127.0.0.1:2379"}, "--election is for the sequencer role"},
		{"election on sqlite", Options{Storage: "sqlite", Election: "etcd://127.0.0.1:2379"}, "--storage mysql://"},
		{"bad election", Options{Storage: my, Roles: Roles{Sequencer: true}, Election: "127.0.0.1:2379"}, "want etcd://"},
		{"sequencer with election", Options{Storage: my, Roles: Roles{Sequencer: true}, Election: "etcd://a:1,b:2"}, ""},
		{"ca without logs or list", Options{Storage: my, Roles: Roles{CA: true}}, "needs --log-list"},
		{"ca with a list", Options{Storage: my, Roles: Roles{CA: true}, CA: CAOptions{LogList: "http://x/log.v3.json"}}, ""},
		{"log-url with a path", Options{Storage: "sqlite", Logs: LogOptions{PublicURL: "https://ct.example/logs"}}, "no path"},
		{"log-url ftp", Options{Storage: "sqlite", Logs: LogOptions{PublicURL: "ftp://ct.example"}}, "http(s)"},
		{"log-url", Options{Storage: "sqlite", Logs: LogOptions{PublicURL: "https://ct.example/"}}, ""},
	} {
		st := &Stage{opts: tc.opts}
		err := st.checkRoles()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: checkRoles = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}
