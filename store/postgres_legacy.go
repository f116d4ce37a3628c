package store

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The legacy users table mapping (PostgresConfig.UsersTable): how its key
// is compared with a user ID, its check against the database, and the
// statements built from it.

// pgIDKind is how a legacy key column is compared with a user ID. The
// meaning is always "id_column::text = user ID"; the typed forms give the
// same answer while letting PostgreSQL use the column's index.
type pgIDKind int

const (
	pgIDAsText pgIDKind = iota // any type: id::text = $1 (no index)
	pgIDText                   // text, varchar: id = $1
	pgIDInt2
	pgIDInt4
	pgIDInt8
	pgIDUUID
)

// Type OIDs of the key columns compared natively.
const (
	pgOIDInt8    = 20
	pgOIDInt2    = 21
	pgOIDInt4    = 23
	pgOIDText    = 25
	pgOIDVarchar = 1043
	pgOIDUUID    = 2950
)

// expr returns the SQL matching column (quoted, alias l) against $n.
func (k pgIDKind) expr(column string, n int) string {
	p := "$" + strconv.Itoa(n) + "::text"
	switch k {
	case pgIDText:
		return "l." + column + " = " + p
	case pgIDInt2:
		return "l." + column + " = " + p + "::smallint"
	case pgIDInt4:
		return "l." + column + " = " + p + "::integer"
	case pgIDInt8:
		return "l." + column + " = " + p + "::bigint"
	case pgIDUUID:
		return "l." + column + " = " + p + "::uuid"
	}
	return "l." + column + "::text = " + p
}

// canMatch reports whether id can equal the text form of a key of this
// kind. Only the canonical text form can (7::text is "7", never "07"), so
// the typed casts in expr never fail on what passes here.
func (k pgIDKind) canMatch(id string) bool {
	bits := 0
	switch k {
	case pgIDInt2:
		bits = 16
	case pgIDInt4:
		bits = 32
	case pgIDInt8:
		bits = 64
	case pgIDUUID:
		return pgUUIDRe.MatchString(id)
	default:
		return true
	}
	n, err := strconv.ParseInt(id, 10, bits)
	return err == nil && strconv.FormatInt(n, 10) == id
}

// pgUUIDRe is the text form PostgreSQL gives a uuid.
var pgUUIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// inspectLegacy checks the users table mapping against the database: the
// table and columns exist, have usable types, and we may read them and
// write the phone columns. It picks how keys are compared.
func (s *PostgresUsers) inspectLegacy(ctx context.Context, cfg PostgresConfig) (*pgLegacy, error) {
	table := pgx.Identifier(strings.Split(cfg.UsersTable, ".")).Sanitize()
	var found bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&found); err != nil {
		return nil, s.fail("inspect users_table", err)
	}
	if !found {
		return nil, fmt.Errorf("store: postgres: users_table: no table %q (looked up in the connection's search_path unless qualified)",
			cfg.UsersTable)
	}
	type column struct {
		oid          uint32
		typ, cat     string
		notNull      bool
		read, update bool
	}
	cols := map[string]column{}
	rows, err := s.pool.Query(ctx, `
		SELECT a.attname::text, a.atttypid::oid, format_type(a.atttypid, a.atttypmod), t.typcategory::text,
		       a.attnotnull,
		       has_column_privilege(a.attrelid, a.attnum, 'SELECT'),
		       has_column_privilege(a.attrelid, a.attnum, 'UPDATE')
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return nil, s.fail("inspect users_table", err)
	}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.oid, &c.typ, &c.cat, &c.notNull, &c.read, &c.update); err != nil {
			rows.Close()
			return nil, s.fail("inspect users_table", err)
		}
		cols[name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("inspect users_table", err)
	}

	lookup := func(field, name string, write bool, category, want string) (column, error) {
		c, ok := cols[name]
		switch {
		case !ok:
			return c, fmt.Errorf("store: postgres: %s: table %q has no column %q", field, cfg.UsersTable, name)
		case category != "" && c.cat != category:
			return c, fmt.Errorf("store: postgres: %s: column %q is %s, want %s", field, name, c.typ, want)
		case !c.read:
			return c, fmt.Errorf("store: postgres: %s: permission denied: cannot SELECT column %q", field, name)
		case write && !c.update:
			return c, fmt.Errorf("store: postgres: %s: permission denied: cannot UPDATE column %q", field, name)
		}
		return c, nil
	}
	l := &pgLegacy{table: table}
	id, err := lookup("id_column", cfg.IDColumn, false, "", "")
	if err != nil {
		return nil, err
	}
	l.id = pgIdent("", cfg.IDColumn)
	switch id.oid {
	case pgOIDText, pgOIDVarchar:
		l.idKind = pgIDText
	case pgOIDInt2:
		l.idKind = pgIDInt2
	case pgOIDInt4:
		l.idKind = pgIDInt4
	case pgOIDInt8:
		l.idKind = pgIDInt8
	case pgOIDUUID:
		l.idKind = pgIDUUID
	}
	phone, err := lookup("phone_column", cfg.PhoneColumn, true, "S", "a string type (text, varchar)")
	if err != nil {
		return nil, err
	}
	l.phone = pgIdent("", cfg.PhoneColumn)
	if phone.notNull {
		l.clearPhone = ""
	}
	verified := cfg.VerifiedColumn
	if verified == "" {
		if _, ok := cols["phone_verified"]; ok && cfg.PhoneColumn != "phone_verified" && cfg.IDColumn != "phone_verified" {
			verified = "phone_verified"
		}
	}
	if verified != "" {
		if _, err := lookup("verified_column", verified, true, "B", "boolean"); err != nil {
			return nil, err
		}
		l.verified = pgIdent("", verified)
	}
	return l, nil
}

func buildPgQueries(users string, l *pgLegacy) pgQueries {
	q := pgQueries{
		getModule: `SELECT phone_number, verified FROM ` + users + ` WHERE user_id = $1::text`,
		remove:    `DELETE FROM ` + users + ` WHERE user_id = $1::text`,
		upsert: `INSERT INTO ` + users + ` (user_id, phone_number, verified, updated_at)
			VALUES ($1::text, $2::text, $3::boolean, now())
			ON CONFLICT (user_id) DO UPDATE SET
				phone_number = EXCLUDED.phone_number,
				verified     = EXCLUDED.verified,
				updated_at   = EXCLUDED.updated_at`,
	}
	q.get = q.getModule
	if l == nil {
		return q
	}
	// A legacy row speaks for its user only while the module's table has
	// no row for that user.
	unmanaged := `NOT EXISTS (SELECT 1 FROM ` + users + ` AS p WHERE p.user_id = l.` + l.id + `::text)`
	isVerified, verifiedValue := "TRUE", "true"
	if l.verified != "" {
		isVerified = "l." + l.verified + " IS TRUE"
		verifiedValue = "COALESCE(l." + l.verified + ", false)"
	}
	// One statement, so both sides are read from one snapshot.
	q.get = `SELECT phone_number, verified FROM ` + users + ` WHERE user_id = $1::text
		UNION ALL
		(SELECT l.` + l.phone + `::text, ` + verifiedValue + ` FROM ` + l.table + ` AS l
		 WHERE ` + l.idKind.expr(l.id, 1) + `
		   AND l.` + l.phone + ` IS NOT NULL AND l.` + l.phone + `::text <> ''
		   AND NOT EXISTS (SELECT 1 FROM ` + users + ` AS p WHERE p.user_id = $1::text)
		 LIMIT 1)`
	q.legacyHolder = `SELECT EXISTS (SELECT 1 FROM ` + l.table + ` AS l
		WHERE l.` + l.phone + ` = $1::text AND ` + isVerified + `
		  AND l.` + l.id + `::text <> $2::text AND ` + unmanaged + `)`
	if l.verified != "" {
		q.legacyUpdate = `UPDATE ` + l.table + ` AS l SET ` + l.phone + ` = $2::text, ` + l.verified + ` = $3::boolean
			WHERE ` + l.idKind.expr(l.id, 1) + `
			  AND (l.` + l.phone + ` IS DISTINCT FROM $2::text OR l.` + l.verified + ` IS DISTINCT FROM $3::boolean)`
	} else {
		q.legacyUpdate = `UPDATE ` + l.table + ` AS l SET ` + l.phone + ` = $2::text
			WHERE ` + l.idKind.expr(l.id, 1) + ` AND l.` + l.phone + ` IS DISTINCT FROM $2::text`
	}
	return q
}
