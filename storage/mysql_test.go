package storage

import (
	"errors"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
)

func TestMySQLDSN(t *testing.T) {
	for _, tc := range []struct {
		spec, wantAddr, wantDB, wantUser string
		wantErr                          bool
	}{
		{spec: "mysql://u:p@127.0.0.1:3306/db", wantAddr: "127.0.0.1:3306", wantDB: "db", wantUser: "u"},
		{spec: "mysql://u:p%40ss@db.example:3307/trillian", wantAddr: "db.example:3307", wantDB: "trillian", wantUser: "u"},
		{spec: "mysql://u@localhost/db", wantAddr: "localhost:3306", wantDB: "db", wantUser: "u"},
		{spec: "mysql://u:p@127.0.0.1:3306/", wantErr: true},
		{spec: "mysql://u:p@127.0.0.1:3306/a/b", wantErr: true},
		{spec: "mysql:///db", wantErr: true},
		{spec: "mysql://%zz@h/db", wantErr: true},
		{spec: "postgres://u:p@h/db", wantErr: true},
	} {
		dsn, err := MySQLDSN(tc.spec)
		if tc.wantErr {
			if err == nil || !errors.Is(err, ErrBadSpec) {
				t.Errorf("%s: error %v, want ErrBadSpec", tc.spec, err)
			}
			if err != nil && strings.Contains(err.Error(), ":p@") {
				t.Errorf("%s: error leaks the password: %v", tc.spec, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		cfg, err := gomysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("%s: DSN %q does not parse: %v", tc.spec, dsn, err)
		}
		if cfg.Addr != tc.wantAddr || cfg.DBName != tc.wantDB || cfg.User != tc.wantUser || cfg.Params["sql_mode"] == "" {
			t.Errorf("%s: got addr %q db %q user %q params %v", tc.spec, cfg.Addr, cfg.DBName, cfg.User, cfg.Params)
		}
	}
}

func TestSplitSQL(t *testing.T) {
	stmts := splitSQL(mysqlSchema)
	if len(stmts) != 9 {
		t.Errorf("%d statements in Trillian's schema, want 9", len(stmts))
	}
	for _, s := range stmts {
		if strings.Contains(s, "--") || strings.HasSuffix(s, ";") {
			t.Errorf("statement keeps a comment or terminator: %.60q", s)
		}
	}
}

// FuzzMySQLDSN checks that any --storage value either parses into a DSN the
// driver accepts or is refused with ErrBadSpec, without panicking.
func FuzzMySQLDSN(f *testing.F) {
	for _, s := range []string{"mysql://u:p@127.0.0.1:3306/db", "mysql://", "mysql://@/", "mysql://u:p@[::1]:3306/db?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		dsn, err := MySQLDSN(spec)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v is not ErrBadSpec", err)
			}
			return
		}
		if _, err := gomysql.ParseDSN(dsn); err != nil {
			t.Fatalf("spec %q gave DSN %q that the driver refuses: %v", spec, dsn, err)
		}
	})
}
