package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/store"
)

// Clerk's users endpoints (SPEC §7), as @clerk/backend's users.getUser,
// users.updateUser({primaryPhoneNumberID}), users.getUserList({phoneNumber})
// and users.getCount send them. A user here is its phone numbers: one
// with none is unknown (404), and a user's other fields are null or empty.

// Bounds of getUserList's page, Clerk's own.
const (
	defaultUserLimit = 10
	maxUserLimit     = 500
	maxUserOffset    = 1<<31 - 1
)

// errUserNotFound is Clerk's 404 for a user ID: here, a user holding no
// number.
func errUserNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", message: "No user has this ID."}
}

// checkUserID refuses a user ID no JWT subject would be.
func checkUserID(user string) error {
	if len(user) > maxAdminUserID || !utf8.ValidString(user) {
		return errInvalid("The user ID is not valid.", "user_id")
	}
	return nil
}

// GET <prefix>/v1/users/{id}: users.getUser.
func (a *adminAPI) getUser(w http.ResponseWriter, r *http.Request, user string) error {
	u, err := a.readUser(r.Context(), user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// readUser is the user object of user, or 404 when it holds no number.
func (a *adminAPI) readUser(ctx context.Context, user string) (clerkUser, error) {
	if err := checkUserID(user); err != nil {
		return clerkUser{}, err
	}
	rows, err := a.numbers.ListPhoneNumbers(ctx, user)
	if err != nil {
		return clerkUser{}, err
	}
	if len(rows) == 0 {
		return clerkUser{}, errUserNotFound()
	}
	return newClerkUser(user, rows), nil
}

// adminUserUpdate is the part of Clerk's updateUser body this store can
// keep; any other field is refused (400), never dropped.
type adminUserUpdate struct {
	PrimaryPhoneNumberID *string `json:"primary_phone_number_id"`
}

// PATCH <prefix>/v1/users/{id}: users.updateUser(id, {primaryPhoneNumberID})
// makes one of the user's numbers primary, under the rules (the number
// GET /phone shows changes, so the open challenge goes and the app is
// told), and answers the user as it now is.
func (a *adminAPI) updateUser(w http.ResponseWriter, r *http.Request, user string) error {
	var req adminUserUpdate
	// The SDK sends no body for an update with nothing in it.
	if err := decodeJSON(w, r, &req, true); err != nil {
		return err
	}
	before, err := a.readUser(r.Context(), user)
	if err != nil {
		return err
	}
	if id := req.PrimaryPhoneNumberID; id != nil {
		owned := slices.ContainsFunc(before.PhoneNumbers, func(n clerkPhoneNumber) bool { return n.ID == *id })
		if !owned {
			// IDs never move between users, so this holds under the lock too.
			return errInvalid("primary_phone_number_id is not one of this user's phone numbers.", "primary_phone_number_id")
		}
		primary := true
		err := a.change(r.Context(), user, func(ctx context.Context) error {
			_, err := a.numbers.UpdatePhoneNumber(ctx, *id, store.PhoneNumberChange{Primary: &primary})
			return err
		})
		if err != nil {
			return err
		}
		a.logger.Info("primary phone number set", zap.String("user_id", user), zap.String("id", *id))
	}
	after, err := a.readUser(r.Context(), user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, after)
	return nil
}

// GET <prefix>/v1/users?phone_number=…: users.getUserList({phoneNumber}),
// a bare array of the users holding any of the numbers.
func (a *adminAPI) listUsers(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := a.userQuery(r, true)
	if err != nil {
		return err
	}
	ids, err := a.numbers.FindUsers(r.Context(), q)
	if err != nil {
		return err
	}
	out := make([]clerkUser, 0, len(ids))
	for _, id := range ids {
		rows, err := a.numbers.ListPhoneNumbers(r.Context(), id)
		if err != nil {
			return err
		}
		if len(rows) > 0 { // gone since it was found
			out = append(out, newClerkUser(id, rows))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET <prefix>/v1/users/count?phone_number=…: users.getCount, which
// getUserList calls beside the list for its totalCount.
func (a *adminAPI) countUsers(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := a.userQuery(r, false)
	if err != nil {
		return err
	}
	n, err := a.numbers.CountUsers(r.Context(), q.PhoneNumbers)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, clerkTotalCount{Object: "total_count", TotalCount: n})
	return nil
}

// userQuery reads the query of the list (page: with limit, offset and
// order_by) or of the count: phone_number, repeated, is required, and
// any other filter of Clerk's is refused rather than ignored, so an
// answer never claims a filter it did not apply.
func (a *adminAPI) userQuery(r *http.Request, page bool) (store.UserQuery, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return store.UserQuery{}, errInvalid("The query string is not valid.", "")
	}
	q := store.UserQuery{Limit: defaultUserLimit}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := vals[k]
		switch {
		case k == "phone_number":
			continue // below
		case !page || (k != "limit" && k != "offset" && k != "order_by"):
			return q, errInvalid(k+" is not supported here: users are found by phone_number only.", k)
		case len(v) != 1:
			return q, errInvalid(k+" must be given once.", k)
		case k == "limit":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > maxUserLimit {
				return q, errInvalid(fmt.Sprintf("limit must be an integer from 1 to %d.", maxUserLimit), k)
			}
			q.Limit = n
		case k == "offset":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 || n > maxUserOffset {
				return q, errInvalid("offset must be an integer of 0 or more.", k)
			}
			q.Offset = n
		case k == "order_by":
			switch v[0] {
			case "created_at", "+created_at":
				q.Oldest = true
			case "-created_at":
			default:
				return q, errInvalid("order_by must be created_at or -created_at.", k)
			}
		}
	}
	raw := vals["phone_number"]
	switch {
	case len(raw) == 0:
		return q, errMissing("phone_number")
	case len(raw) > store.MaxUserQueryNumbers:
		return q, errInvalid(fmt.Sprintf("At most %d phone numbers.", store.MaxUserQueryNumbers), "phone_number")
	}
	q.PhoneNumbers = make([]string, len(raw))
	for i, s := range raw {
		n, err := a.norm.Normalize(s)
		if err != nil {
			return q, err
		}
		q.PhoneNumbers[i] = n
	}
	return q, nil
}

// --- Clerk's user object ----------------------------------------------------

// clerkUser is Clerk's user object (UserJSON in @clerk/backend): the
// fields this store has data for, and every other one null, false or
// empty, never missing.
type clerkUser struct {
	Object                        string             `json:"object"`
	ID                            string             `json:"id"`
	ExternalID                    *string            `json:"external_id"`
	PrimaryEmailAddressID         *string            `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string            `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string            `json:"primary_web3_wallet_id"`
	Username                      *string            `json:"username"`
	FirstName                     *string            `json:"first_name"`
	LastName                      *string            `json:"last_name"`
	ImageURL                      string             `json:"image_url"`
	HasImage                      bool               `json:"has_image"`
	PasswordEnabled               bool               `json:"password_enabled"`
	PasswordLastUpdatedAt         *int64             `json:"password_last_updated_at"`
	TwoFactorEnabled              bool               `json:"two_factor_enabled"`
	TOTPEnabled                   bool               `json:"totp_enabled"`
	BackupCodeEnabled             bool               `json:"backup_code_enabled"`
	EmailAddresses                []struct{}         `json:"email_addresses"`
	PhoneNumbers                  []clerkPhoneNumber `json:"phone_numbers"`
	Web3Wallets                   []struct{}         `json:"web3_wallets"`
	ExternalAccounts              []struct{}         `json:"external_accounts"`
	EnterpriseAccounts            []struct{}         `json:"enterprise_accounts"`
	OrganizationMemberships       []struct{}         `json:"organization_memberships"`
	PublicMetadata                struct{}           `json:"public_metadata"`
	PrivateMetadata               struct{}           `json:"private_metadata"`
	UnsafeMetadata                struct{}           `json:"unsafe_metadata"`
	LastSignInAt                  *int64             `json:"last_sign_in_at"`
	LastActiveAt                  *int64             `json:"last_active_at"`
	Banned                        bool               `json:"banned"`
	Locked                        bool               `json:"locked"`
	Deprovisioned                 bool               `json:"deprovisioned"`
	LockoutExpiresInSeconds       *int64             `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining *int64             `json:"verification_attempts_remaining"`
	CreateOrganizationEnabled     bool               `json:"create_organization_enabled"`
	CreateOrganizationsLimit      *int64             `json:"create_organizations_limit"`
	DeleteSelfEnabled             bool               `json:"delete_self_enabled"`
	LegalAcceptedAt               *int64             `json:"legal_accepted_at"`
	Locale                        *string            `json:"locale"`
	Timezone                      *string            `json:"timezone"`
	// CreatedAt is the creation of the user's oldest number, UpdatedAt
	// the last change to any (Unix milliseconds).
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
}

// newClerkUser is the user object of user holding rows (at least one).
func newClerkUser(user string, rows []store.PhoneNumber) clerkUser {
	u := clerkUser{Object: "user", ID: user, EmailAddresses: []struct{}{}, PhoneNumbers: make([]clerkPhoneNumber, len(rows)),
		Web3Wallets: []struct{}{}, ExternalAccounts: []struct{}{}, EnterpriseAccounts: []struct{}{},
		OrganizationMemberships: []struct{}{}, CreatedAt: store.UserCreatedAt(rows), UpdatedAt: store.UserUpdatedAt(rows)}
	for i, n := range rows {
		u.PhoneNumbers[i] = clerkNumber(n)
		if n.Primary {
			u.PrimaryPhoneNumberID = &rows[i].ID
		}
		if n.ReservedForSecondFactor {
			u.TwoFactorEnabled = true // a phone second factor, as Clerk counts it
		}
	}
	return u
}

// clerkTotalCount is Clerk's count object; the SDK returns total_count.
type clerkTotalCount struct {
	Object     string `json:"object"`
	TotalCount int    `json:"total_count"`
}
