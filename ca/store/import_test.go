package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// TestImportSQLite imports a ca.db that began at schema version 1 into a
// store that already has part of it (as after an interrupted import):
// every record arrives whole, the file is set aside, and a second import
// finds nothing to do.
func TestImportSQLite(t *testing.T) {
	for _, dst := range []struct {
		name string
		open func(t *testing.T) Store
	}{
		{"to sqlite", func(t *testing.T) Store {
			s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "other.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"to mysql", func(t *testing.T) Store {
			dsn, err := storage.MySQLDSN(testenv.MySQL(t))
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenMySQL(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(dst.name, func(t *testing.T) {
			ctx := context.Background()
			r1, r2, r3 := record(t, "a1", issuerA, farFuture), record(t, "a2", issuerA, farFuture), record(t, "b3", issuerB, farFuture)
			path := v1Database(t, []*Record{r1, r2}) // a1 has a certificate and an SCT
			src, err := OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			mustAdd(t, src, r3)
			if err := src.AddCertificate(ctx, "b3", []byte("cert-b3"), testSCTs(2), time.UnixMilli(7000), false); err != nil {
				t.Fatal(err)
			}
			for serial, reason := range map[string]int{"a2": 4, "b3": 1} {
				if err := src.Revoke(ctx, serial, reason, time.UnixMilli(8000)); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]*Record{}
			for _, serial := range []string{"a1", "a2", "b3"} {
				if want[serial], err = src.Get(ctx, serial); err != nil {
					t.Fatal(err)
				}
			}
			src.Close()

			d := dst.open(t)
			defer d.Close()
			mustAdd(t, d, r2) // imported before an interruption
			n, err := ImportSQLite(ctx, path, d)
			if err != nil || n != 3 {
				t.Fatalf("ImportSQLite = %d, %v; want 3 records", n, err)
			}
			for serial, w := range want {
				got, err := d.Get(ctx, serial)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("imported %s = %+v, want %+v", serial, got, w)
				}
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s is still there after the import (%v)", path, err)
			}
			if _, err := os.Stat(path + ImportedSuffix); err != nil {
				t.Errorf("the imported file was not set aside: %v", err)
			}
			if n, err := ImportSQLite(ctx, path, d); n != 0 || err != nil {
				t.Errorf("second ImportSQLite = %d, %v; want nothing to do", n, err)
			}
		})
	}
}
