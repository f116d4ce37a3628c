package sms

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestZZPrint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	c := NewChain(NewWebhook("primary", srv.URL, "k", nil), NewWebhook("backup", slow.URL+"?token=x", "k", &http.Client{Timeout: 50 * time.Millisecond}))
	fmt.Println(c.Send(context.Background(), testMessage()))
}
