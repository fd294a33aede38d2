package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
)

// CheckSecretKey runs creds.CheckSecretKey and logs what it recorded. A
// mismatch comes back as one error that names both fingerprints and the
// ways out, one a line; serve, demo and the commands that add credentials
// refuse to go on with it.
func CheckSecretKey(ctx context.Context, creds *credential.Service, log *slog.Logger) error {
	res, err := creds.CheckSecretKey(ctx)
	var me *credential.KeyMismatchError
	if errors.As(err, &me) {
		return fmt.Errorf("%w\n%s", err, mismatchHelp(me))
	}
	if err != nil {
		return err
	}
	switch {
	case res.Replaced != "":
		log.Warn("secret key changed; no PSK key was sealed with the old one, the new one is recorded",
			"fingerprint", res.Fingerprint, "replaced", res.Replaced)
	case res.Recorded:
		log.Info("secret key fingerprint recorded", "fingerprint", res.Fingerprint)
	default:
		log.Debug("secret key matches the database", "fingerprint", res.Fingerprint)
	}
	if n := len(res.Unreadable); n > 0 {
		shown := res.Unreadable[:min(n, 10)]
		log.Warn("PSK keys sealed with another secret key: these devices cannot handshake until their credentials are added again",
			"count", n, "endpoints", strings.Join(shown, ","))
	}
	return nil
}

// mismatchHelp says how to get out of a secret key mismatch.
func mismatchHelp(me *credential.KeyMismatchError) string {
	dev := credential.Fingerprint(config.DevSecretKey)
	var lines []string
	if me.Configured == dev {
		lines = append(lines, "the configured key is the public development key: are FLOWNEXUS_SECRET_KEY and FLOWNEXUS_SECRET_KEY_FILE unset?")
	}
	oldKey := "the old key in FLOWNEXUS_OLD_SECRET_KEY, --old-key-file FILE or --old-key-stdin"
	if me.Stored == dev {
		lines = append(lines, "the PSK keys were sealed with the public development key")
		oldKey = "FLOWNEXUS_OLD_SECRET_KEY=" + config.DevSecretKey
	}
	return strings.Join(append(lines,
		"to go on, do one of:",
		"  - configure the key the PSK keys were sealed with (FLOWNEXUS_SECRET_KEY or FLOWNEXUS_SECRET_KEY_FILE);",
		"  - stop every server and re-seal the PSK keys with the configured key: flownexus secret rotate, with "+oldKey+";",
		fmt.Sprintf("  - if that key is lost: flownexus secret reset --drop-psks removes the %d PSK credentials it sealed (their devices need new PSKs) and records the configured key.", me.Unreadable),
	), "\n")
}
