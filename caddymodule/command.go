package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "phone-token",
		Usage: "--sub <user> [--secret <secret>] [--alg HS256] [--ttl 1h] [--iss <issuer>] [--aud <audience>] [--project-id <id>]",
		Short: "Mints a development bearer token for the phone module",
		Long: `
Mints an HS256/384/512 JWT for trying the /phone routes by hand. It is for
development: production tokens come from your identity provider.

--secret defaults to the PHONE_JWT_SECRET environment variable, the same
one Caddyfile.example reads. The token is written to stdout.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("secret", "", "HMAC secret (default $PHONE_JWT_SECRET)")
			cmd.Flags().String("sub", "", "User ID (the sub claim)")
			cmd.Flags().String("alg", "HS256", "HS256, HS384 or HS512")
			cmd.Flags().Duration("ttl", time.Hour, "Lifetime of the token")
			cmd.Flags().String("iss", "", "Issuer claim")
			cmd.Flags().String("aud", "", "Audience claim")
			cmd.Flags().String("project-id", "", "Prefix the token with <project-id>: (Descope's form)")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdPhoneToken)
		},
	})
}

func cmdPhoneToken(fs caddycmd.Flags) (int, error) {
	tok, err := mintToken(fs.String("secret"), fs.String("sub"), fs.String("alg"), fs.String("iss"),
		fs.String("aud"), fs.Duration("ttl"), time.Now())
	if err != nil {
		return exitCodeBadInput, err
	}
	if pid := fs.String("project-id"); pid != "" {
		tok = pid + ":" + tok
	}
	fmt.Println(tok)
	return 0, nil
}

// exitCodeBadInput mirrors caddy's exit code for bad input.
const exitCodeBadInput = 1

// mintToken signs a dev token with iat and auth_time set to now.
func mintToken(secret, sub, alg, iss, aud string, ttl time.Duration, now time.Time) (string, error) {
	if secret == "" {
		secret = os.Getenv("PHONE_JWT_SECRET")
	}
	if secret == "" {
		return "", errors.New("--secret or PHONE_JWT_SECRET is required")
	}
	if sub == "" {
		return "", errors.New("--sub is required")
	}
	if ttl <= 0 {
		return "", errors.New("--ttl must be positive")
	}
	method := jwt.GetSigningMethod(alg)
	if _, ok := method.(*jwt.SigningMethodHMAC); !ok {
		return "", fmt.Errorf("--alg must be HS256, HS384 or HS512, got %q", alg)
	}
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "auth_time": now.Unix(), "exp": now.Add(ttl).Unix()}
	if iss != "" {
		claims["iss"] = iss
	}
	if aud != "" {
		claims["aud"] = aud
	}
	return jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
}
