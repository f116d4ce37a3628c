package e2e

import caddycmd "github.com/caddyserver/caddy/v2/cmd"

func caddycmdMain() { caddycmd.Main() }
