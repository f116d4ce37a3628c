package store

import "time"

// numberColumns are the columns of the phone_numbers table (PostgreSQL and
// SQLite alike), in the order scanNumber reads them and numberArgs writes
// them. Timestamps are Unix milliseconds.
const numberColumns = `id, user_id, phone_number, verified, strategy, is_primary, reserved,
	default_second_factor, created_at, updated_at`

// scanNumber reads one row of numberColumns with scan (the Scan of a
// pgx.Rows or a *sql.Rows).
func scanNumber(scan func(dest ...any) error) (PhoneNumber, error) {
	var n PhoneNumber
	var created, updated int64
	if err := scan(&n.ID, &n.UserID, &n.PhoneNumber, &n.Verified, &n.Strategy, &n.Primary,
		&n.ReservedForSecondFactor, &n.DefaultSecondFactor, &created, &updated); err != nil {
		return PhoneNumber{}, err
	}
	n.CreatedAt, n.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return n, nil
}

// numberArgs returns n's values for numberColumns.
func numberArgs(n PhoneNumber) []any {
	return []any{n.ID, n.UserID, n.PhoneNumber, n.Verified, n.Strategy, n.Primary, n.ReservedForSecondFactor,
		n.DefaultSecondFactor, n.CreatedAt.UnixMilli(), n.UpdatedAt.UnixMilli()}
}
