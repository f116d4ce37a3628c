// Package storetest is the conformance suite every store backend runs
// unchanged, so the rules in caddymodule/flow can rely on the same
// behaviour whichever backend the Caddyfile picks.
//
// The suite names its users, numbers and keys with a random part, so a
// backend whose open shares state between calls (one Redis, one
// PostgreSQL database) still sees each subtest alone.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rnd() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
