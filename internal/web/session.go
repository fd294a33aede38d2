package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// The cookies: SessionCookie holds a session's random token; LoginCSRFCookie
// holds the CSRF token of the login form, before there is a session (the
// form's hidden field must repeat it).
const (
	SessionCookie   = "flownexus_session"
	LoginCSRFCookie = "flownexus_login_csrf"
	// CSRFField is the form field holding the CSRF token.
	CSRFField = "csrf_token"
)

// session is the logged-in user of a request: its user, what its
// memberships grant it, and the part of its sites the site switcher shows.
type session struct {
	store.Session
	user store.User
	subj auth.Subject
	view auth.View
}

func (s *session) subject() auth.Subject { return s.subj }

// scope returns the devices the page may show for permission p: those
// the user may do p to, narrowed to the site switcher's choice. Every
// handler listing, counting or naming devices goes through it.
func (s *session) scope(p auth.Permission) auth.Scope { return s.subj.Scope(p).Narrow(s.view) }

// newToken returns 32 random bytes, URL-safe base64.
func newToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// session returns the request's live session, or nil when it has none:
// no cookie, an unknown token, a session past its idle or absolute
// timeout (then deleted), or one of a disabled user. Activity is recorded
// at most once a minute per session.
func (w *Web) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, nil
	}
	id := hashToken(c.Value)
	ss, u, err := w.cfg.Store.GetSession(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := w.cfg.Now()
	if !now.Before(ss.ExpiresAt) || now.Sub(ss.LastSeenAt) >= w.cfg.IdleTimeout || u.Disabled() {
		if err := w.cfg.Store.DeleteSession(r.Context(), id); err != nil {
			w.log.Warn("deleting an ended session failed", "err", err)
		}
		return nil, nil
	}
	if now.Sub(ss.LastSeenAt) >= time.Minute {
		if err := w.cfg.Store.TouchSession(r.Context(), id, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			w.log.Warn("recording session activity failed", "err", err)
		}
	}
	subj, err := w.cfg.Store.Subject(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return &session{Session: ss, user: u, subj: subj, view: viewOf(r, subj)}, nil
}

// secure reports whether cookies set on r's response are Secure: over
// HTTPS, and always outside development mode.
func (w *Web) secure(r *http.Request) bool { return r.TLS != nil || !w.cfg.Debug }

func (w *Web) setCookie(rw http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(rw, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: w.secure(r), SameSite: http.SameSiteLaxMode})
}

// checkOrigin refuses (403) a state-changing request whose Origin (or,
// without one, Referer) is neither the request's own scheme and host nor
// a trusted origin; a request with neither header is refused too.
func (w *Web) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return forbidden("the request names no origin (no Origin or Referer header)")
		}
		u, err := url.Parse(ref)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return forbidden("the request's Referer is not a URL")
		}
		origin = u.Scheme + "://" + u.Host
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) || slices.ContainsFunc(w.cfg.TrustedOrigins, func(o string) bool {
		return strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	}) {
		return nil
	}
	return forbidden("cross-origin request refused: " + origin + " is not a trusted origin (see FLOWNEXUS_CSRF_ORIGINS)")
}

// checkCSRF refuses (403) a state-changing request whose form does not
// carry the CSRF token: the session's, or without a session the login
// form's (from its cookie). Compared in constant time.
func (w *Web) checkCSRF(r *http.Request, s *session) error {
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	got := r.PostFormValue(CSRFField)
	want := ""
	if s != nil {
		want = s.CSRFToken
	} else if c, err := r.Cookie(LoginCSRFCookie); err == nil {
		want = c.Value
	}
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
	}
	return nil
}

// loginCSRF returns the login form's CSRF token, setting its cookie when
// the request has none.
func (w *Web) loginCSRF(rw http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(LoginCSRFCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 100 {
		return c.Value
	}
	tok := newToken()
	w.setCookie(rw, r, LoginCSRFCookie, tok, 0)
	return tok
}

// safeNext returns next when it is a path on this server ("/devices?q=a"),
// else "/": no scheme, no host, no "//" or "/\" start (which browsers
// take as another host).
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// clientAddr is the host of the request's remote address.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

type loginData struct {
	Username, Next, Error, CSRF string
}

func (w *Web) loginForm(rw http.ResponseWriter, r *http.Request, s *session) error {
	next := safeNext(r.URL.Query().Get("next"))
	if s != nil {
		http.Redirect(rw, r, next, http.StatusSeeOther)
		return nil
	}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, http.StatusOK, "login", nil, loginData{Next: next, CSRF: w.loginCSRF(rw, r)})
	return nil
}

// login checks the username and password. Failures of one account or
// from one client address are counted; past the limit the form answers
// 429 without checking the password. Every failure is audited.
func (w *Web) login(rw http.ResponseWriter, r *http.Request, _ *session) error {
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	now := w.cfg.Now()
	keys := []string{"user:" + strings.ToLower(name), "addr:" + clientAddr(r)}
	again := func(status int, msg, reason string) error {
		w.log.Warn("dashboard login failed", "user", name, "reason", reason, "remote_addr", r.RemoteAddr)
		// Failures that check a password are bounded by the limiter; the
		// refused attempts past it are audited up to the same number per
		// address and window, so a looping client cannot flood the log.
		audit := true
		if status == http.StatusTooManyRequests {
			addr := clientAddr(r)
			if audit = !w.refusedAudits.blocked(now, addr); audit {
				w.refusedAudits.fail(now, addr)
			}
		}
		if audit {
			w.audit(ctx, store.AuditEntry{Actor: name, Action: ActionLoginFailed, Target: name, RemoteAddr: r.RemoteAddr},
				map[string]any{"reason": reason})
		}
		rw.Header().Set("Cache-Control", "no-store")
		w.render(rw, r, status, "login", nil, loginData{Username: name, Next: next, Error: msg, CSRF: w.loginCSRF(rw, r)})
		return nil
	}
	if w.limiter.blocked(now, keys...) {
		return again(http.StatusTooManyRequests, "Too many failed logins: try again later.", "rate_limited")
	}
	if name == "" || password == "" {
		return again(http.StatusBadRequest, "Enter a username and a password.", "empty")
	}
	u, err := w.cfg.Store.GetUserByName(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || auth.VerifyPassword(u.PasswordHash, password) != nil {
		w.limiter.fail(now, keys...)
		return again(http.StatusUnauthorized, "Wrong username or password.", "wrong_password")
	}
	if u.Disabled() {
		w.limiter.fail(now, keys...)
		return again(http.StatusForbidden, "This user is disabled.", "disabled")
	}
	// Sessions that ended unseen (their browsers never came back) are
	// removed here, at each login, so the table holds live ones only.
	if _, err := w.cfg.Store.DeleteExpiredSessions(ctx, now, now.Add(-w.cfg.IdleTimeout)); err != nil {
		w.log.Warn("removing ended sessions failed", "err", err)
	}
	tok := newToken()
	if err := w.cfg.Store.CreateSession(ctx, store.Session{ID: hashToken(tok), UserID: u.ID, CSRFToken: newToken(),
		CreatedAt: now, ExpiresAt: now.Add(w.cfg.AbsoluteTimeout)}); err != nil {
		return err
	}
	if err := w.cfg.Store.TouchLogin(ctx, u.ID, now); err != nil {
		w.log.Warn("recording a login failed", "user", u.Username, "err", err)
	}
	w.audit(ctx, store.AuditEntry{UserID: u.ID, Actor: u.Username, Action: ActionLogin, Target: u.Username,
		RemoteAddr: r.RemoteAddr}, map[string]any{"surface": "dashboard"})
	w.setCookie(rw, r, SessionCookie, tok, int(w.cfg.AbsoluteTimeout/time.Second))
	w.setCookie(rw, r, LoginCSRFCookie, "", -1)
	http.Redirect(rw, r, next, http.StatusSeeOther)
	return nil
}

// logout ends the request's session (if any) and sends the browser to
// the login form.
func (w *Web) logout(rw http.ResponseWriter, r *http.Request, s *session) error {
	if s != nil {
		if err := w.cfg.Store.DeleteSession(r.Context(), s.ID); err != nil {
			return err
		}
	}
	w.setCookie(rw, r, SessionCookie, "", -1)
	http.Redirect(rw, r, "/login", http.StatusSeeOther)
	return nil
}
