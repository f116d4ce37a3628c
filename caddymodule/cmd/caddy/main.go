// Command caddy is Caddy with the phone module built in: the binary the
// README's first command runs. Production builds use xcaddy instead.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-phone/caddy-phone/caddymodule"
)

func main() {
	caddycmd.Main()
}
