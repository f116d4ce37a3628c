package store

import (
	"context"
	"fmt"
	"strings"
)

// UserQueriesSQL returns the statements pn's FindUsers and CountUsers run
// for q, with their arguments, so tests can read their plans; ok is false
// for a backend without SQL.
func UserQueriesSQL(pn PhoneNumbers, q UserQuery) (find string, findArgs []any, count string, countArgs []any, ok bool) {
	s, isService := pn.(*numbersService)
	if !isService {
		return "", nil, "", nil, false
	}
	switch b := s.b.(type) {
	case sqliteNumbers:
		find, findArgs = b.findUsersQuery(q)
		count, countArgs = sqliteIn(sqliteCountUsers, q.PhoneNumbers)
		return find, findArgs, count, countArgs, true
	case pgNumbers:
		return b.findUsersQuery(q), []any{q.PhoneNumbers, q.Limit, q.Offset},
			`SELECT count(*) FROM (` + b.matchedUsers() + `) AS m`, []any{q.PhoneNumbers}, true
	}
	return "", nil, "", nil, false
}

// SQLitePlan is EXPLAIN QUERY PLAN of query, one step a line.
func SQLitePlan(ctx context.Context, s *SQLiteUsers, query string, args ...any) (string, error) {
	rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", err
		}
		fmt.Fprintln(&b, detail)
	}
	return b.String(), rows.Err()
}
