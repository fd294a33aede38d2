package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/firmware"
)

// firmwareServer builds the firmware download server of cfg, nil when
// --fw-listen is empty: plain HTTP with --fw-plain, else HTTPS with
// --fw-cert/--fw-key or, in debug mode without them, the development
// certificate in the data directory (its CA in fw-ca.pem beside it). A
// chain whose handshake records exceed the record cap is logged as a
// warning.
func firmwareServer(cfg config.Config, images *firmware.Images, log *slog.Logger) (*firmware.Server, error) {
	if cfg.FWListen == "" {
		return nil, nil
	}
	scfg := firmware.ServerConfig{Images: images, RecordSize: cfg.FWRecordSize, Logger: log}
	switch {
	case cfg.FWPlain:
	case cfg.FWCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.FWCert, cfg.FWKey)
		if err != nil {
			return nil, fmt.Errorf("firmware certificate (--fw-cert %s, --fw-key %s): %w", cfg.FWCert, cfg.FWKey, err)
		}
		scfg.Certificate = &cert
	case cfg.Debug:
		var hosts []string
		if u, err := url.Parse(cfg.FWPublicURL); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
		cert, err := firmware.DevCertificate(cfg.DataDir, hosts)
		if err != nil {
			return nil, fmt.Errorf("firmware development certificate in %s: %w", cfg.DataDir, err)
		}
		scfg.Certificate = &cert
		log.Info("firmware HTTPS uses the development certificate: give devices its CA",
			"ca", cfg.DataDir+"/"+firmware.DevCAFile)
	default:
		return nil, fmt.Errorf("firmware HTTPS server (--fw-listen %s) has no certificate: with debug off set --fw-cert and --fw-key (FLOWNEXUS_FW_CERT, FLOWNEXUS_FW_KEY), or --fw-plain (FLOWNEXUS_FW_PLAIN) for plain HTTP, or --fw-listen \"\" to turn it off", cfg.FWListen)
	}
	if w := firmware.CheckChain(scfg.Certificate, cfg.FWRecordSize); w != "" {
		log.Warn(w)
	}
	return firmware.NewServer(scfg), nil
}

// firmwareURLs are the bases of the download URLs once the listeners are
// bound: --fw-public-url, or scheme://<host>:<bound port>/ of the
// firmware server; coap:// and coaps:// on the CoAP listeners' ports. The
// host is that of --fw-public-url, else the listen address's own host,
// else localhost.
func (a *App) firmwareURLs() firmware.URLs {
	host := "localhost"
	pub, _ := url.Parse(a.cfg.FWPublicURL)
	if pub != nil && pub.Hostname() != "" {
		host = pub.Hostname()
	}
	base := func(scheme, listen string, port int) string {
		h := host
		if pub == nil || pub.Hostname() == "" {
			if lh, _, err := net.SplitHostPort(listen); err == nil && lh != "" && lh != "0.0.0.0" && lh != "::" {
				h = lh
			}
		}
		return scheme + "://" + net.JoinHostPort(h, strconv.Itoa(port)) + "/"
	}
	var u firmware.URLs
	switch {
	case a.cfg.FWPublicURL != "":
		u.HTTP = a.cfg.FWPublicURL
		if !strings.HasSuffix(u.HTTP, "/") {
			u.HTTP += "/"
		}
	case a.fw != nil:
		scheme := "https"
		if !a.fw.TLS() {
			scheme = "http"
		}
		u.HTTP = base(scheme, a.cfg.FWListen, a.fw.Addr().(*net.TCPAddr).Port)
	}
	if a.cfg.CoAPListen != "" {
		u.CoAP = base("coap", a.cfg.CoAPListen, int(a.CoAP.Addr().Port()))
	}
	if a.cfg.CoAPSListen != "" {
		u.CoAPS = base("coaps", a.cfg.CoAPSListen, int(a.CoAP.DTLSAddr().Port()))
	}
	return u
}

// FWAddr is the bound address of the firmware download server after
// Start; "" when --fw-listen is empty or before Start.
func (a *App) FWAddr() string {
	if a.fw == nil || a.fw.Addr() == nil {
		return ""
	}
	return a.fw.Addr().String()
}
