package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
)

// The namespace names the data, not the path that reached it: a file
// reopened keeps its id, two files never share one.
func TestSQLiteNamespaceFromTheData(t *testing.T) {
	dir := t.TempDir()
	a := openSQLite(t, filepath.Join(dir, "a.db"))
	b := openSQLite(t, filepath.Join(dir, "b.db"))
	nsA, nsB := a.Backend().Namespace, b.Backend().Namespace
	if nsA == "" || nsB == "" || nsA == nsB {
		t.Fatalf("namespaces %q and %q: want two different ids", nsA, nsB)
	}
	// Another path to the same file (through a symlink) reads the same id.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip(err)
	}
	again := openSQLite(t, filepath.Join(link, "a.db"))
	if ns := again.Backend().Namespace; ns != nsA {
		t.Fatalf("a.db reopened by another path: namespace %q, want %q", ns, nsA)
	}
}

// Processes starting together on a new file agree on one id.
func TestSQLiteNamespaceConcurrentFirstStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	const n = 8
	var wg sync.WaitGroup
	ns := make([]string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := store.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			ns[i] = s.Backend().Namespace
			s.Close()
		})
	}
	close(start)
	wg.Wait()
	for i := range ns {
		if ns[i] == "" || ns[i] != ns[0] {
			t.Fatalf("namespaces %q: want one id", ns)
		}
	}
}

// Two DSNs reaching one database and schema (another host name for the
// server, another application_name) give one namespace; another schema,
// another.
func TestPostgresNamespaceFromTheData(t *testing.T) {
	e := newPgEnv(t, false)
	a := e.open(e.config(false)).Backend().Namespace
	other := e.config(false)
	if !strings.Contains(other.DSN, "127.0.0.1") {
		t.Skipf("%s must name 127.0.0.1 for this test", pgDSNEnv)
	}
	other.DSN = withDSNParam(t, strings.Replace(other.DSN, "127.0.0.1", "localhost", 1), "application_name", e.schema+"_pod2")
	b := e.open(other).Backend().Namespace
	if a == "" || a != b {
		t.Fatalf("namespaces %q and %q: two DSNs of one database must share one", a, b)
	}
	f := newPgEnv(t, false)
	if c := f.open(f.config(false)).Backend().Namespace; c == a {
		t.Fatalf("another schema has namespace %q too", c)
	}
}

// Instances starting together on a new schema agree on one id.
func TestPostgresNamespaceConcurrentFirstStart(t *testing.T) {
	e := newPgEnv(t, false)
	const n = 8
	var wg sync.WaitGroup
	ns := make([]string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := store.OpenPostgres(pgCtx(t), e.config(false))
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			ns[i] = s.Backend().Namespace
			s.Close()
		})
	}
	close(start)
	wg.Wait()
	for i := range ns {
		if ns[i] == "" || ns[i] != ns[0] {
			t.Fatalf("namespaces %q: want one id", ns)
		}
	}
	var rows int
	if err := e.admin.QueryRow(pgCtx(t), `SELECT count(*) FROM `+e.q("phone_meta")).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("phone_meta has %d rows, want 1", rows)
	}
}

// Every memory store is data of its own.
func TestMemoryNamespacePerStore(t *testing.T) {
	a, b := store.NewMemoryUsers().Backend().Namespace, store.NewMemoryUsers().Backend().Namespace
	if a == "" || a == b {
		t.Fatalf("namespaces %q and %q", a, b)
	}
}
