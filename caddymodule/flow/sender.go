package flow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-phone/caddy-phone/caddymodule/numbers"
	"github.com/caddy-phone/caddy-phone/sms"
)

// notifyPrevious tells the old number that a verified number was replaced
// (notify_previous). No code goes with it, no budget is spent (each change
// of a verified number already cost a verified code, or is an update with
// verification off), and a failure is logged, not returned. It runs on
// after the client hangs up: the change is made already.
func (s *Service) notifyPrevious(ctx context.Context, userID, number string) {
	if !s.cfg.NotifyPrevious {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	body, used := sms.Templates{Default: s.cfg.NotifyTemplate}.Render("", sms.Vars{App: s.cfg.AppName})
	id, err := s.randomID()
	if err == nil {
		err = s.sender.Send(ctx, sms.Message{ID: id, To: number, Body: body, Locale: used, Purpose: PurposeNotify,
			UserID: userID, TemplateOptions: map[string]string{}, Channel: s.cfg.notifyChannel()})
	}
	if err != nil {
		s.logger.Warn("notify_previous SMS failed", zap.String("user_id", userID),
			zap.String("to", numbers.Mask(number)), zap.Error(err))
	}
}

// PurposeNotify is the sms.Message Purpose of the notify_previous SMS.
const PurposeNotify = "notify"

// notifyTimeout bounds the notify_previous SMS (the chain may try several
// providers, 10 s each).
const notifyTimeout = 30 * time.Second

// send renders the code's message for its channel and sends it: a voice
// message spells the code digit by digit (sms.SpokenCode), as it is read.
func (s *Service) send(ctx context.Context, userID, number, code, purpose, locale string, opts map[string]string, provider, channel string) error {
	shown := code
	if channel == sms.ChannelVoice {
		shown = sms.SpokenCode(code)
	}
	body, used := s.cfg.templatesFor(channel).Render(locale, sms.Vars{Code: shown, App: s.cfg.AppName,
		Minutes: int((s.cfg.TTL + time.Minute - 1) / time.Minute), Options: opts})
	if opts == nil {
		opts = map[string]string{}
	}
	id, err := s.randomID()
	if err != nil {
		return err
	}
	return s.sender.Send(ctx, sms.Message{ID: id, To: number, Body: body, Code: code,
		Locale: used, Purpose: purpose, UserID: userID, TemplateOptions: opts, ProviderID: provider, Channel: channel})
}

func (s *Service) newCode() (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s.cfg.CodeLength)), nil)
	n, err := rand.Int(s.rand, max)
	if err != nil {
		return "", fmt.Errorf("code generation: %w", err)
	}
	return fmt.Sprintf("%0*d", s.cfg.CodeLength, n), nil
}

func (s *Service) randomID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
