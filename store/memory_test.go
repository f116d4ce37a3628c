package store_test

import (
	"testing"

	"github.com/caddy-phone/caddy-phone/store"
	"github.com/caddy-phone/caddy-phone/store/storetest"
)

func TestMemoryUsers(t *testing.T) {
	storetest.TestUsers(t, func(t *testing.T) store.Users {
		s := store.NewMemoryUsers()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
