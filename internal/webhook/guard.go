package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrBlockedAddress is matched by the error of a connection refused by
// the address guard.
var ErrBlockedAddress = errors.New("webhook: address not allowed")

// extraBlocked are ranges refused besides netip's classes: "this network"
// (0.0.0.0/8), shared address space (carrier-grade NAT, 100.64.0.0/10)
// and the limited broadcast address.
var extraBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("255.255.255.255/32"),
}

// Blocked reports whether a webhook may not connect to a: a loopback,
// private (RFC 1918, unique local fc00::/7), link-local, unspecified,
// multicast, CGNAT or broadcast address, also when written as an
// IPv4-mapped IPv6 address. Such addresses reach the server itself or its
// internal network (server-side request forgery).
func Blocked(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range extraBlocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// guardControl is a net.Dialer Control hook refusing Blocked addresses: it
// runs on the address actually dialled, after name resolution, so a name
// that resolves to a public address when the webhook is created and to a
// private one later (DNS rebinding) is refused all the same.
func guardControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
	}
	if Blocked(ap.Addr()) {
		return fmt.Errorf("%w: %s is a loopback, private, link-local or otherwise internal address", ErrBlockedAddress, ap.Addr())
	}
	return nil
}

// urlPolicy is what webhook URLs may be.
type urlPolicy struct {
	allowHTTP    bool // http:// as well as https:// (debug mode)
	allowPrivate bool // internal addresses (--webhook-allow-private)
	lookup       func(ctx context.Context, host string) ([]netip.Addr, error)
}

// maxURLLen bounds a webhook URL.
const maxURLLen = 2048

// check returns why raw may not be a webhook URL, "" when it may: it must
// be an absolute https URL (http too with allowHTTP) without user
// information or fragment, whose host, unless allowPrivate, is neither an
// internal address nor a name resolving to one.
func (p urlPolicy) check(ctx context.Context, raw string) string {
	if raw == "" {
		return "a URL is required"
	}
	if len(raw) > maxURLLen {
		return fmt.Sprintf("longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "not a URL"
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.allowHTTP:
	case u.Scheme == "http":
		return "must be an https:// URL"
	default:
		return "must be an https:// URL"
	}
	if u.Host == "" || u.Hostname() == "" {
		return "must name a host"
	}
	if u.User != nil {
		return "must not hold a user name or password"
	}
	if u.Fragment != "" {
		return "must not hold a fragment (#...)"
	}
	if p.allowPrivate {
		return ""
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if Blocked(a) {
			return "must not point to a loopback, private, link-local or otherwise internal address"
		}
		return ""
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "must not point to the server itself"
	}
	lookup := p.lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return "its host name does not resolve"
	}
	for _, a := range addrs {
		if Blocked(a) {
			return "its host name resolves to a loopback, private, link-local or otherwise internal address"
		}
	}
	return ""
}
