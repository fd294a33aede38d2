package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
)

const fwUsage = "fw upload FILE --version V | fw list | fw remove VERSION | fw update ENDPOINT --version V | fw updates | fw cancel ID|ENDPOINT | fw campaign …"

// runFw dispatches the fw subcommands. Each works on the database and the
// firmware directory directly, as the server does; a running server sees
// the result at once.
func runFw(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, fwUsage)
	}
	switch args[0] {
	case "upload":
		return fwUpload(ctx, iox, args[1:])
	case "list":
		return fwList(ctx, iox, args[1:])
	case "remove":
		return fwRemove(ctx, iox, args[1:])
	case "update":
		return fwUpdate(ctx, iox, args[1:])
	case "updates":
		return fwUpdates(ctx, iox, args[1:])
	case "cancel":
		return fwCancel(ctx, iox, args[1:])
	case "campaign":
		return fwCampaign(ctx, iox, args[1:])
	}
	return fmt.Errorf("%w: unknown fw command %q (upload, list, remove, update, updates, cancel, campaign)", errUsage, args[0])
}

// cliActor is who the CLI acts as in the audit log.
var cliActor = store.Actor{Name: "cli"}

// fwUpload stores the image in FILE ("-": stdin) as version V and prints
// its download path alone on the last line.
func fwUpload(ctx context.Context, iox IO, args []string) error {
	var version string
	cfg, pos, err := loadConfig(iox, "fw upload", args, func(fs *flag.FlagSet) {
		fs.StringVar(&version, "version", "", "the image's version (required): 1 to 64 letters, digits and ._+-")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 || version == "" {
		return fmt.Errorf("%w: fw upload FILE --version V", errUsage)
	}
	in, label := iox.Stdin, "stdin"
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in, label = f, pos[0]
	}
	st, images, err := openImages(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	img, err := images.Upload(ctx, cliActor, version, in)
	if err != nil {
		return fmt.Errorf("%s: nothing stored: %w", label, err)
	}
	fmt.Fprintf(iox.Stdout, "uploaded %s: %d bytes, sha256 %s\n%s\n", img.Version, img.Size, img.SHA256,
		firmware.DownloadPath(img.Filename))
	return nil
}

func fwList(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "fw list", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: fw list takes no arguments", errUsage)
	}
	st, images, err := openImages(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := images.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSIZE\tSHA256\tCREATED\tPATH")
	for _, f := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.Version, f.Size, f.SHA256, f.CreatedAt.UTC().Format(time.RFC3339),
			firmware.DownloadPath(f.Filename))
	}
	return tw.Flush()
}

func fwRemove(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "fw remove", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: fw remove VERSION", errUsage)
	}
	st, images, err := openImages(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := images.Remove(ctx, cliActor, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "removed firmware %s\n", pos[0])
	return nil
}

// openImages opens the database (migrating it) and the image store over
// it and the firmware directory; the caller closes the store.
func openImages(ctx context.Context, iox IO, cfg config.Config) (*store.Store, *firmware.Images, error) {
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return nil, nil, err
	}
	images, err := firmware.New(firmware.Config{Store: st, Dir: cfg.Firmware(), MaxSize: cfg.FWMaxSize})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, images, nil
}
