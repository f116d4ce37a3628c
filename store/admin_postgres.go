package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgNumbersLockKey is the pg_advisory_xact_lock key that serialises the
// creation of the admin API's table and trigger ("phone_nu").
const pgNumbersLockKey int64 = 0x70686f6e655f6e75

// Every writer of phone_users or of phone_numbers takes, in this order, a
// two-key advisory lock on the user (pgNumbersUserLock, hashtext(user_id))
// and one on the number it may verify (pgNumbersNumberLock,
// hashtext(number)): Set through the phone_numbers_lock trigger, before
// its row reaches any index, and the admin calls at the start of their
// transaction. So writers of one user, or of one verified number, queue
// instead of deadlocking on each other's index entries.
const (
	pgNumbersUserLock   int32 = 0x706e7531 // "pnu1"
	pgNumbersNumberLock int32 = 0x706e6e31 // "pnn1"
)

// errNumbersConflict: a concurrent writer got in first (two primaries or
// two defaults for one user); the whole call runs again.
var errNumbersConflict = errors.New("store: concurrent change to a user's phone numbers")

// pgNumbersDDL creates the admin API's table beside phone_users, outside
// pgMigrations: the first config enabling the admin endpoints creates it.
// {numbers}, {users} and {follow} are quoted, qualified names. The trigger
// keeps the primary number in step with phone_users whoever writes it; see
// sqliteNumbersSchema for the rules.
var pgNumbersDDL = []string{
	`CREATE TABLE IF NOT EXISTS {numbers} (
		id                    text    NOT NULL PRIMARY KEY,
		user_id               text    NOT NULL,
		phone_number          text    NOT NULL CHECK (phone_number <> ''),
		verified              boolean NOT NULL DEFAULT false,
		strategy              text    NOT NULL DEFAULT '' CHECK (strategy IN ('', 'admin', 'phone_code')),
		is_primary            boolean NOT NULL DEFAULT false,
		reserved              boolean NOT NULL DEFAULT false,
		default_second_factor boolean NOT NULL DEFAULT false,
		created_at            bigint  NOT NULL, -- unix milliseconds
		updated_at            bigint  NOT NULL,
		seq                   bigint  GENERATED ALWAYS AS IDENTITY, -- orders a user's numbers
		CONSTRAINT phone_numbers_reserved_verified CHECK (verified OR NOT reserved),
		CONSTRAINT phone_numbers_default_reserved CHECK (reserved OR NOT default_second_factor),
		CONSTRAINT phone_numbers_user_number UNIQUE (user_id, phone_number)
	)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_verified_number ON {numbers} (phone_number) WHERE verified`,
	`CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_primary ON {numbers} (user_id) WHERE is_primary`,
	`CREATE UNIQUE INDEX IF NOT EXISTS phone_numbers_default_second_factor ON {numbers} (user_id) WHERE default_second_factor`,
	// The admin API's user list finds users by number (findUsers).
	`CREATE INDEX IF NOT EXISTS phone_numbers_number ON {numbers} (phone_number)`,
	`CREATE OR REPLACE FUNCTION {follow}() RETURNS trigger LANGUAGE plpgsql AS $fn$
	DECLARE
		now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
		uid    text;
	BEGIN
		IF TG_OP = 'DELETE' THEN
			uid := OLD.user_id;
			DELETE FROM {numbers} WHERE user_id = uid AND is_primary AND phone_number = OLD.phone_number;
		ELSE
			uid := NEW.user_id;
			DELETE FROM {numbers} WHERE user_id = uid AND is_primary AND phone_number <> NEW.phone_number;
			UPDATE {numbers} SET
				is_primary            = true,
				strategy              = CASE WHEN NOT NEW.verified THEN '' WHEN NOT verified THEN 'phone_code' ELSE strategy END,
				reserved              = reserved AND NEW.verified,
				default_second_factor = default_second_factor AND NEW.verified,
				verified              = NEW.verified,
				updated_at            = now_ms
			WHERE user_id = uid AND phone_number = NEW.phone_number AND (NOT is_primary OR verified <> NEW.verified);
			INSERT INTO {numbers} (id, user_id, phone_number, verified, strategy, is_primary, created_at, updated_at)
			SELECT 'idn_' || replace(gen_random_uuid()::text, '-', ''), uid, NEW.phone_number, NEW.verified,
			       CASE WHEN NEW.verified THEN 'phone_code' ELSE '' END, true, now_ms, now_ms
			WHERE NOT EXISTS (SELECT 1 FROM {numbers} WHERE user_id = uid AND phone_number = NEW.phone_number);
		END IF;
		UPDATE {numbers} SET default_second_factor = true
		WHERE id = (SELECT id FROM {numbers} WHERE user_id = uid AND reserved ORDER BY seq LIMIT 1)
		  AND NOT EXISTS (SELECT 1 FROM {numbers} WHERE user_id = uid AND default_second_factor);
		RETURN NULL;
	END
	$fn$`,
	`CREATE OR REPLACE FUNCTION {lock}() RETURNS trigger LANGUAGE plpgsql AS $fn$
	BEGIN
		IF TG_OP = 'DELETE' THEN
			PERFORM pg_advisory_xact_lock({user_lock}, hashtext(OLD.user_id));
			RETURN OLD;
		END IF;
		PERFORM pg_advisory_xact_lock({user_lock}, hashtext(NEW.user_id));
		-- A number the user holds verified as a secondary number is never
		-- lowered by an unverified write: the row is raised to match (see
		-- sqliteFollow), before the number lock, which it then needs.
		IF NOT NEW.verified AND EXISTS (SELECT 1 FROM {numbers} WHERE user_id = NEW.user_id
				AND phone_number = NEW.phone_number AND verified AND NOT is_primary) THEN
			NEW.verified := true;
		END IF;
		IF NEW.verified THEN
			PERFORM pg_advisory_xact_lock({number_lock}, hashtext(NEW.phone_number));
		END IF;
		RETURN NEW;
	END
	$fn$`,
}

// pgNumbersTriggers are created when missing, by name.
var pgNumbersTriggers = map[string]string{
	"phone_numbers_lock": `CREATE TRIGGER phone_numbers_lock
		BEFORE INSERT OR DELETE OR UPDATE ON {users}
		FOR EACH ROW EXECUTE FUNCTION {lock}()`,
	"phone_numbers_follow": `CREATE TRIGGER phone_numbers_follow
		AFTER INSERT OR DELETE OR UPDATE OF phone_number, verified ON {users}
		FOR EACH ROW EXECUTE FUNCTION {follow}()`,
}

// pgNumbersBackfill gives every user already in phone_users their primary
// number, when the table is new.
const pgNumbersBackfill = `INSERT INTO {numbers}
	(id, user_id, phone_number, verified, strategy, is_primary, created_at, updated_at)
	SELECT 'idn_' || replace(gen_random_uuid()::text, '-', ''), user_id, phone_number, verified,
	       CASE WHEN verified THEN 'phone_code' ELSE '' END, true,
	       (extract(epoch FROM updated_at) * 1000)::bigint, (extract(epoch FROM updated_at) * 1000)::bigint
	FROM {users} ORDER BY updated_at`

// pgNumbers is the PhoneNumbers backend of a PostgresUsers.
type pgNumbers struct {
	s              *PostgresUsers
	users, numbers string // quoted, qualified
}

// openNumbers creates the admin API's table, function and trigger when
// missing, under an advisory lock, so instances starting together queue.
func (s *PostgresUsers) openNumbers(ctx context.Context) (numbersBackend, error) {
	users := s.usersTable()
	b := pgNumbers{s: s, users: users, numbers: pgSibling(users, "phone_numbers")}
	r := strings.NewReplacer("{users}", users, "{numbers}", b.numbers,
		"{follow}", pgSibling(users, "phone_numbers_follow"), "{lock}", pgSibling(users, "phone_numbers_lock"),
		"{user_lock}", strconv.Itoa(int(pgNumbersUserLock)), "{number_lock}", strconv.Itoa(int(pgNumbersNumberLock)))
	ctx, cancel := context.WithTimeout(ctx, 3*s.timeout)
	defer cancel()
	err := s.run(ctx, func(ctx context.Context) error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgNumbersLockKey); err != nil {
			return err
		}
		var existed bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, b.numbers).Scan(&existed); err != nil {
			return err
		}
		for _, stmt := range pgNumbersDDL {
			if _, err := tx.Exec(ctx, r.Replace(stmt)); err != nil {
				return err
			}
		}
		for name, stmt := range pgNumbersTriggers {
			// Not DROP and CREATE on every start: that would lock
			// phone_users against every writer.
			var present bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2)`,
				users, name).Scan(&present); err != nil {
				return err
			}
			if !present {
				if _, err := tx.Exec(ctx, r.Replace(stmt)); err != nil {
					return err
				}
			}
		}
		if !existed {
			if _, err := tx.Exec(ctx, r.Replace(pgNumbersBackfill)); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, s.fail("phone numbers: create", err)
	}
	return b, nil
}

// usersTable is the quoted, qualified name of the module's phone_users
// table, as the store's own statements name it.
func (s *PostgresUsers) usersTable() string {
	t, _, _ := strings.Cut(strings.TrimPrefix(s.sql.remove, "DELETE FROM "), " ")
	return t
}

// pgSibling names another object in the schema of the quoted, qualified
// table name users.
func pgSibling(users, name string) string {
	if i := strings.LastIndex(users, `"."`); i >= 0 {
		return users[:i+2] + pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{name}.Sanitize()
}

// legacyNumberID is the ID of the number a legacy row holds for a user the
// module has never written: derived from the user and the number, so List
// shows the same ID on every read without writing it, and the write that
// adopts the user (pgNumbersTx.adopt) stores the row under that ID.
func legacyNumberID(userID, number string) string {
	h := sha256.Sum256([]byte("legacy\x00" + userID + "\x00" + number))
	return numberIDPrefix + hex.EncodeToString(h[:16])
}

// legacyOwner finds the legacy row whose number has the ID id (as
// legacyNumberID makes it), among the users the module does not manage.
// It computes the ID of every such row: a scan of the legacy table, run
// only for an ID the module's table does not hold.
func (b pgNumbers) legacyOwner() string {
	l := b.s.legacy
	return `SELECT l.` + l.id + `::text, l.` + l.phone + `::text FROM ` + l.table + ` AS l
		WHERE l.` + l.phone + ` IS NOT NULL AND l.` + l.phone + `::text <> ''
		  AND NOT EXISTS (SELECT 1 FROM ` + b.users + ` AS p WHERE p.user_id = l.` + l.id + `::text)
		  AND 'idn_' || left(encode(sha256(convert_to('legacy', 'UTF8') || decode('00', 'hex') ||
		      convert_to(l.` + l.id + `::text, 'UTF8') || decode('00', 'hex') || convert_to(l.` + l.phone + `::text, 'UTF8')), 'hex'), 32) = $1::text
		LIMIT 1`
}

func (b pgNumbers) ownerOf(ctx context.Context, id string) (string, string, error) {
	var owner, number string
	err := b.s.run(ctx, func(ctx context.Context) error {
		err := b.s.pool.QueryRow(ctx, `SELECT user_id, phone_number FROM `+b.numbers+` WHERE id = $1::text`, id).
			Scan(&owner, &number)
		if errors.Is(err, pgx.ErrNoRows) && b.s.legacy != nil {
			// Perhaps the number of a legacy user the module has never
			// written, as List shows it; inUser checks it again.
			err = b.s.pool.QueryRow(ctx, b.legacyOwner(), id).Scan(&owner, &number)
		}
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", "", ErrNotFound
	case err != nil:
		return "", "", b.s.fail("phone numbers: owner", err)
	}
	return owner, number, nil
}

// inUser runs a writer in one transaction holding the user's and the
// number's advisory locks, taken in the order Set takes them. With a
// legacy users table, a number the module has only read from it is first
// adopted into phone_users, values unchanged, so it gets an ID like any
// other. A reader runs without locks, in a read-only transaction that is
// rolled back: it adopts nothing, and shows such a legacy number as
// adoption would store it (legacyNumberID), so the user's one number stays
// readable and the first write keeps its ID.
func (b pgNumbers) inUser(ctx context.Context, userID, number string, write bool, fn func(numbersTx) error) error {
	var err error
	for range pgMaxAttempts {
		err = b.s.run(ctx, func(ctx context.Context) error {
			opts := pgx.TxOptions{}
			if !write {
				// Its queries see one snapshot.
				opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
			}
			tx, err := b.s.pool.BeginTx(ctx, opts)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			ntx := &pgNumbersTx{b: b, tx: tx, userID: userID}
			if !write {
				// A read takes no lock and writes nothing: a legacy
				// number is adopted by the first write only, so reading
				// never turns a legacy-read user into a module-managed
				// one; list shows it as adoption would store it.
				ntx.legacyRead = b.s.legacy != nil && b.s.legacy.idKind.canMatch(userID)
				return fn(ntx)
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2::text))`,
				pgNumbersUserLock, userID); err != nil {
				return err
			}
			if number != "" {
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2::text))`,
					pgNumbersNumberLock, number); err != nil {
					return err
				}
			}
			managed := true
			err = tx.QueryRow(ctx, `SELECT true FROM `+b.users+` WHERE user_id = $1::text FOR UPDATE`, userID).Scan(&managed)
			if errors.Is(err, pgx.ErrNoRows) {
				managed = false
			} else if err != nil {
				return err
			}
			if !managed && b.s.legacy != nil && b.s.legacy.idKind.canMatch(userID) {
				if err := ntx.adopt(ctx); err != nil {
					return err
				}
			}
			if err := fn(ntx); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
		if !errors.Is(err, errNumbersConflict) {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrPhoneInUse), errors.Is(err, ErrPhoneExists),
		errors.Is(err, ErrNotVerified), errors.Is(err, ErrNotSupported), errors.Is(err, ErrKeepPrimary),
		errors.Is(err, errEmptyUserID), errors.Is(err, ErrUnavailable):
		return err
	}
	return b.s.fail("phone numbers", err)
}

type pgNumbersTx struct {
	b      pgNumbers
	tx     pgx.Tx
	userID string
	// legacyRead: a read of a user a legacy row may speak for; list adds
	// that row's number when the module does not manage the user.
	legacyRead bool
}

// legacyNumber returns the number the legacy row holds for a user the
// module does not manage, as adopt would store it, or ok false when there
// is none to adopt: no legacy number, the user managed (the query reads
// the module's row first), or the number held verified by another user,
// where adopt leaves it.
func (tx *pgNumbersTx) legacyNumber(ctx context.Context) (n PhoneNumber, ok bool, err error) {
	var managed bool
	if err := tx.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+tx.b.users+` WHERE user_id = $1::text)`,
		tx.userID).Scan(&managed); err != nil || managed {
		return n, false, err
	}
	err = tx.tx.QueryRow(ctx, tx.b.s.sql.get, tx.userID).Scan(&n.PhoneNumber, &n.Verified)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && n.PhoneNumber == "") {
		return n, false, nil
	}
	if err != nil {
		return n, false, err
	}
	if n.Verified {
		if held, err := tx.heldByOther(ctx, n.PhoneNumber); err != nil || held {
			return n, false, err
		}
		n.Strategy = StrategyPhoneCode // as the trigger sets it
	}
	n.ID, n.UserID, n.Primary = legacyNumberID(tx.userID, n.PhoneNumber), tx.userID, true
	return n, true, nil
}

// adopt writes the legacy row's number into phone_users as it is; the
// trigger makes it the primary number, under the ID List showed
// (legacyNumberID), inserted first. A number another user holds verified
// is left where it is (Get still shows it).
func (tx *pgNumbersTx) adopt(ctx context.Context) error {
	n, ok, err := tx.legacyNumber(ctx)
	if err != nil || !ok {
		return err
	}
	if n.Verified {
		// Before the row reaches an index, as every writer does.
		if _, err := tx.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2::text))`,
			pgNumbersNumberLock, n.PhoneNumber); err != nil {
			return err
		}
	}
	// A row the user already holds for this number (left by another
	// configuration) keeps its ID: the trigger then updates it. The
	// number predates the module: created_at is the epoch, as List showed.
	if _, err := tx.tx.Exec(ctx, `INSERT INTO `+tx.b.numbers+`
		(id, user_id, phone_number, verified, strategy, is_primary, created_at, updated_at)
		SELECT $1::text, $2::text, $3::text, $4::boolean, $5::text, false, 0, ms
		FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) t
		WHERE NOT EXISTS (SELECT 1 FROM `+tx.b.numbers+` WHERE user_id = $2::text AND phone_number = $3::text)`,
		n.ID, tx.userID, n.PhoneNumber, n.Verified, n.Strategy); err != nil {
		return pgNumbersResult(err)
	}
	_, err = tx.tx.Exec(ctx, `INSERT INTO `+tx.b.users+` (user_id, phone_number, verified, updated_at)
		VALUES ($1::text, $2::text, $3::boolean, now()) ON CONFLICT (user_id) DO NOTHING`, tx.userID, n.PhoneNumber, n.Verified)
	return pgNumbersResult(err)
}

func (tx *pgNumbersTx) list(ctx context.Context) ([]PhoneNumber, error) {
	out, err := tx.listRows(ctx)
	if err != nil || !tx.legacyRead {
		return out, err
	}
	n, ok, err := tx.legacyNumber(ctx)
	if err != nil || !ok {
		return out, err
	}
	if slices.ContainsFunc(out, func(r PhoneNumber) bool { return r.PhoneNumber == n.PhoneNumber }) {
		return out, nil // adopt would keep that row
	}
	// Not stored, and unknown: the Unix epoch, the same on every read.
	n.CreatedAt, n.UpdatedAt = time.UnixMilli(0), time.UnixMilli(0)
	// Adopting deletes another primary row (the trigger does).
	out = slices.DeleteFunc(out, func(r PhoneNumber) bool { return r.Primary })
	return append(out, n), nil
}

func (tx *pgNumbersTx) listRows(ctx context.Context) ([]PhoneNumber, error) {
	rows, err := tx.tx.Query(ctx, `SELECT `+numberColumns+` FROM `+tx.b.numbers+`
		WHERE user_id = $1::text ORDER BY seq`, tx.userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PhoneNumber
	for rows.Next() {
		n, err := scanNumber(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func (tx *pgNumbersTx) heldByOther(ctx context.Context, number string) (bool, error) {
	var held bool
	err := tx.tx.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM `+tx.b.numbers+` WHERE phone_number = $1::text AND verified AND user_id <> $2::text) OR
		EXISTS (SELECT 1 FROM `+tx.b.users+` WHERE phone_number = $1::text AND verified AND user_id <> $2::text)`,
		number, tx.userID).Scan(&held)
	if err != nil || held || tx.b.s.legacy == nil {
		return held, err
	}
	err = tx.tx.QueryRow(ctx, tx.b.s.sql.legacyHolder, number, tx.userID).Scan(&held)
	return held, err
}

func (tx *pgNumbersTx) put(ctx context.Context, n PhoneNumber) error {
	_, err := tx.tx.Exec(ctx, `INSERT INTO `+tx.b.numbers+` (`+numberColumns+`)
		VALUES ($1::text, $2::text, $3::text, $4::boolean, $5::text, $6::boolean, $7::boolean, $8::boolean, $9::bigint, $10::bigint)
		ON CONFLICT (id) DO UPDATE SET
			verified              = EXCLUDED.verified,
			strategy              = EXCLUDED.strategy,
			is_primary            = EXCLUDED.is_primary,
			reserved              = EXCLUDED.reserved,
			default_second_factor = EXCLUDED.default_second_factor,
			updated_at            = EXCLUDED.updated_at`,
		numberArgs(n)...)
	return pgNumbersResult(err)
}

func (tx *pgNumbersTx) remove(ctx context.Context, id string) error {
	_, err := tx.tx.Exec(ctx, `DELETE FROM `+tx.b.numbers+` WHERE id = $1::text`, id)
	return pgNumbersResult(err)
}

// setUser writes phone_users, and the legacy columns, as Set does,
// inside this transaction.
func (tx *pgNumbersTx) setUser(ctx context.Context, u User) error {
	return tx.b.s.writeUser(ctx, tx.tx, u, pgNumbersResult)
}

// pgNumbersResult maps a write's unique violation by the index that
// refused it.
func pgNumbersResult(err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "23505" {
		return err
	}
	switch pe.ConstraintName {
	case "phone_numbers_user_number":
		return ErrPhoneExists
	case "phone_numbers_primary", "phone_numbers_default_second_factor", "phone_numbers_pkey", "phone_users_pkey":
		return fmt.Errorf("%w: %w", errNumbersConflict, err)
	}
	return ErrPhoneInUse // the verified-number indexes, or the legacy table's own
}

// matchedUsers is the set of users holding any of the numbers ($1, a
// text array) as a subquery: through phone_numbers_number, and, with a
// legacy users table, the legacy rows of users the module does not
// manage, through that table's index on its phone column if it has one
// (as Set's in-use check).
func (b pgNumbers) matchedUsers() string {
	q := `SELECT user_id FROM ` + b.numbers + ` WHERE phone_number = ANY($1::text[])`
	if l := b.s.legacy; l != nil {
		q += ` UNION SELECT l.` + l.id + `::text FROM ` + l.table + ` AS l
			WHERE l.` + l.phone + ` = ANY($1::text[])
			  AND NOT EXISTS (SELECT 1 FROM ` + b.users + ` AS p WHERE p.user_id = l.` + l.id + `::text)`
	} else {
		q = `SELECT DISTINCT ` + strings.TrimPrefix(q, "SELECT ")
	}
	return q
}

// findUsersQuery orders the matched users by their oldest number (a
// legacy user the module has never written has none: the epoch, as List
// shows its number), through phone_numbers_user_number.
func (b pgNumbers) findUsersQuery(q UserQuery) string {
	order := "DESC"
	if q.Oldest {
		order = "ASC"
	}
	return `SELECT m.user_id FROM (` + b.matchedUsers() + `) AS m
		ORDER BY COALESCE((SELECT min(n.created_at) FROM ` + b.numbers + ` AS n WHERE n.user_id = m.user_id), 0) ` + order + `,
		         m.user_id COLLATE "C"
		LIMIT $2 OFFSET $3`
}

func (b pgNumbers) findUsers(ctx context.Context, q UserQuery) ([]string, error) {
	var out []string
	err := b.s.run(ctx, func(ctx context.Context) error {
		rows, err := b.s.pool.Query(ctx, b.findUsersQuery(q), q.PhoneNumbers, q.Limit, q.Offset)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, b.s.fail("phone numbers: find users", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func (b pgNumbers) countUsers(ctx context.Context, numbers []string) (int, error) {
	var n int
	err := b.s.run(ctx, func(ctx context.Context) error {
		return b.s.pool.QueryRow(ctx, `SELECT count(*) FROM (`+b.matchedUsers()+`) AS m`, numbers).Scan(&n)
	})
	if err != nil {
		return 0, b.s.fail("phone numbers: count users", err)
	}
	return n, nil
}
