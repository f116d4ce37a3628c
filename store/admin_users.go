package store

import (
	"context"
	"errors"
	"slices"
)

// UserQuery finds users by their numbers for the admin API's user list
// (Clerk's users.getUserList({phoneNumber}), SPEC §7).
type UserQuery struct {
	// PhoneNumbers are E.164 numbers; a user matches when it holds any of
	// them as any of its numbers, verified or not, primary or not.
	PhoneNumbers []string
	// Oldest orders the users oldest first; newest first otherwise
	// (Clerk's default, -created_at). A user's age is that of its oldest
	// number (UserCreatedAt); ties go by user ID.
	Oldest bool
	// Limit is the most users returned; Offset skips the first ones.
	Limit, Offset int
}

// MaxUserQueryNumbers bounds UserQuery.PhoneNumbers, as Clerk bounds its
// list filters.
const MaxUserQueryNumbers = 100

// errBadUserQuery refuses a query the caller should have checked.
var errBadUserQuery = errors.New("store: user query: bad limit, offset or numbers")

// checkUserQuery refuses what would reach a query unbounded.
func checkUserQuery(numbers []string, limit, offset int) error {
	if len(numbers) > MaxUserQueryNumbers || limit < 0 || offset < 0 || slices.Contains(numbers, "") {
		return errBadUserQuery
	}
	return nil
}

// FindUsers returns the IDs of the users q selects, in q's order: one
// indexed lookup by number, never a scan of every user.
func (s *numbersService) FindUsers(ctx context.Context, q UserQuery) ([]string, error) {
	if err := checkUserQuery(q.PhoneNumbers, q.Limit, q.Offset); err != nil {
		return nil, err
	}
	if len(q.PhoneNumbers) == 0 || q.Limit == 0 {
		return []string{}, nil
	}
	q.PhoneNumbers = dedupe(q.PhoneNumbers)
	return s.b.findUsers(ctx, q)
}

// CountUsers returns how many users hold any of numbers (FindUsers
// without its page).
func (s *numbersService) CountUsers(ctx context.Context, numbers []string) (int, error) {
	if err := checkUserQuery(numbers, 0, 0); err != nil {
		return 0, err
	}
	if len(numbers) == 0 {
		return 0, nil
	}
	return s.b.countUsers(ctx, dedupe(numbers))
}

func dedupe(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// UserCreatedAt is a user's age as the admin API shows it: the creation
// of its oldest number (zero when it has none).
func UserCreatedAt(rows []PhoneNumber) (ms int64) {
	for i, r := range rows {
		if c := r.CreatedAt.UnixMilli(); i == 0 || c < ms {
			ms = c
		}
	}
	return ms
}

// UserUpdatedAt is the last change to any of a user's numbers.
func UserUpdatedAt(rows []PhoneNumber) (ms int64) {
	for _, r := range rows {
		ms = max(ms, r.UpdatedAt.UnixMilli())
	}
	return ms
}

// pageUsers orders users (ID → age in Unix milliseconds) as q says and
// cuts q's page: the memory store's way, the SQL stores do it in SQL.
func pageUsers(ages map[string]int64, q UserQuery) []string {
	ids := make([]string, 0, len(ages))
	for id := range ages {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if ages[a] != ages[b] {
			if (ages[a] < ages[b]) == q.Oldest {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	if q.Offset >= len(ids) {
		return []string{}
	}
	ids = ids[q.Offset:]
	return ids[:min(q.Limit, len(ids))]
}
