# flownexus developer targets. The README's test command is the contract;
# these are conveniences around it.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/flownexus/flownexus/internal/version.Version=$(VERSION) \
           -X github.com/flownexus/flownexus/internal/version.Commit=$(COMMIT)
FUZZTIME ?= 10s

.PHONY: build run test lint bench bench-load fuzz screenshots ci
build:
	go build -ldflags "$(LDFLAGS)" -o flownexus ./cmd/flownexus

run:
	go run -ldflags "$(LDFLAGS)" ./cmd/flownexus serve

test:
	go test -race ./...

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...

# Same-run fleet load: the bare echo server, flownexus on SQLite and on
# PostgreSQL (a fresh database), DEVICES devices registering at once, Sends
# for SEND, de-registration (make bench-load DEVICES=300 SEND=3s for a
# short run; PG_URL, ENGINES, MIN_RATIO: see scripts/bench-load).
DEVICES ?= 10000
SEND ?= 15s
bench-load:
	DEVICES=$(DEVICES) SEND=$(SEND) scripts/bench-load

# Run every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m for a long run).
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz-all

# Refresh the README's dashboard screenshots from the browser tests
# (needs Debian's chromium).
SHOTS := $(shell mktemp -d -u /tmp/flownexus-shots.XXXXXX)
screenshots:
	FLOWNEXUS_SCREENSHOTS=$(SHOTS) go test -count=1 -run 'TestDataPagesInBrowser|TestFirmwareDashboardInBrowser' ./internal/app/
	cp $(SHOTS)/overview-charts.png docs/screenshots/overview.png
	cp $(SHOTS)/data-device.png docs/screenshots/device.png
	cp $(SHOTS)/data-history.png docs/screenshots/history.png
	cp $(SHOTS)/firmware.png docs/screenshots/firmware.png

ci:
	bash .ci/run
