package credential

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/flownexus/flownexus/internal/store"
)

// A PSK file lists pre-shared keys in CSV, one device a line:
//
//	endpoint,psk-identity,psk-hex-key
//
// Lines starting with '#' and blank lines are skipped, fields may be
// quoted as in RFC 4180 and have spaces around them, and a first line
// whose first field is "endpoint" is taken as a header. The key is hex
// (colons allowed between bytes, as ParseKey takes it). The same file is
// what `flownexus credential import` adds to the server and what
// `flownexus simulate --psk-file` gives its devices.

// PSKEntry is one line of a PSK file.
type PSKEntry struct {
	Line     int // 1-based line number in the file; 0 when not read from one
	Endpoint string
	Identity string
	Key      []byte
}

// LineError is what is wrong with one line of a PSK file. Its message
// never contains the line's key.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e LineError) Unwrap() error { return e.Err }

// FileError lists every bad line of a PSK file, in line order, one a line
// of its message after a summary line.
type FileError struct {
	Lines []LineError
}

func (e *FileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad line", len(e.Lines))
	if len(e.Lines) != 1 {
		b.WriteByte('s')
	}
	for _, l := range e.Lines {
		b.WriteByte('\n')
		b.WriteString(l.Error())
	}
	return b.String()
}

// ReadPSKFile reads a PSK file and checks every entry as Add would
// (lengths, printable names, key size) and that no endpoint or identity
// appears twice. Any bad line makes it return a *FileError that lists them
// all; an empty file is an error too.
func ReadPSKFile(r io.Reader) ([]PSKEntry, error) {
	entries, bad, err := readPSKFile(r)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, &FileError{Lines: bad}
	}
	if len(entries) == 0 {
		return nil, errors.New("credential: the PSK file lists no credentials")
	}
	return entries, nil
}

// readPSKFile parses r and returns its good entries and the bad lines; err
// is a failure to read r.
func readPSKFile(r io.Reader) (entries []PSKEntry, bad []LineError, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	byEndpoint := map[string]int{}
	byIdentity := map[string]int{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad = append(bad, LineError{Line: pe.StartLine, Err: pe.Err})
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("credential: reading the PSK file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if first && strings.EqualFold(rec[0], "endpoint") {
			continue
		}
		if len(rec) != 3 {
			bad = append(bad, LineError{Line: line, Err: fmt.Errorf("%d fields, want 3: endpoint,psk-identity,psk-hex-key", len(rec))})
			continue
		}
		key, err := ParseKey(rec[2])
		if err != nil {
			bad = append(bad, LineError{Line: line, Err: err})
			continue
		}
		e := PSKEntry{Line: line, Endpoint: rec[0], Identity: rec[1], Key: key}
		if _, err := e.request().validate(); err != nil {
			bad = append(bad, LineError{Line: line, Err: err})
			continue
		}
		if prev, dup := byEndpoint[e.Endpoint]; dup {
			bad = append(bad, LineError{Line: line, Err: fmt.Errorf("endpoint %q is also on line %d", e.Endpoint, prev)})
			continue
		}
		if prev, dup := byIdentity[e.Identity]; dup {
			bad = append(bad, LineError{Line: line, Err: fmt.Errorf("PSK identity %q is also on line %d", e.Identity, prev)})
			continue
		}
		byEndpoint[e.Endpoint], byIdentity[e.Identity] = line, line
		entries = append(entries, e)
	}
	return entries, bad, nil
}

func (e PSKEntry) request() AddRequest {
	return AddRequest{Endpoint: e.Endpoint, PSKIdentity: e.Identity, PSKKey: e.Key}
}

// WritePSKFile writes entries as a PSK file, with a comment line naming
// the columns. The file holds keys in clear: the caller chooses where it
// goes.
func WritePSKFile(w io.Writer, entries []PSKEntry) error {
	if _, err := io.WriteString(w, "# endpoint,psk-identity,psk-hex-key\n"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	for _, e := range entries {
		if err := cw.Write([]string{e.Endpoint, e.Identity, hex.EncodeToString(e.Key)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ImportPSK reads a PSK file (see ReadPSKFile) and adds all its
// credentials in one transaction, with a credential.add audit entry each,
// or none of them: a bad line, or an endpoint or identity that already has
// a credential, makes it return a *FileError listing every such line;
// while the database records another secret key's fingerprint it fails
// with ErrKeyMismatch. It returns how many credentials it added.
func (s *Service) ImportPSK(ctx context.Context, by store.Actor, r io.Reader) (int, error) {
	entries, bad, err := readPSKFile(r)
	if err != nil {
		return 0, err
	}
	existing, err := s.st.ListCredentials(ctx)
	if err != nil {
		return 0, fmt.Errorf("credential: import: %w", err)
	}
	haveEndpoint := make(map[string]bool, len(existing))
	haveIdentity := make(map[string]bool, len(existing))
	for _, c := range existing {
		haveEndpoint[c.EndpointName] = true
		if c.PSKIdentity != "" {
			haveIdentity[c.PSKIdentity] = true
		}
	}
	for _, e := range entries {
		switch {
		case haveEndpoint[e.Endpoint]:
			bad = append(bad, LineError{Line: e.Line, Err: fmt.Errorf("endpoint %q already has a credential", e.Endpoint)})
		case haveIdentity[e.Identity]:
			bad = append(bad, LineError{Line: e.Line, Err: fmt.Errorf("PSK identity %q is in use", e.Identity)})
		}
	}
	if len(bad) > 0 {
		slices.SortStableFunc(bad, func(a, b LineError) int { return cmp.Compare(a.Line, b.Line) })
		return 0, &FileError{Lines: bad}
	}
	if len(entries) == 0 {
		return 0, errors.New("credential: the PSK file lists no credentials")
	}
	err = s.st.WithTx(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			c := store.Credential{EndpointName: e.Endpoint, Kind: PSK, PSKIdentity: e.Identity,
				PSKKeyEnc: s.seal.seal(e.Key, e.Endpoint, e.Identity)}
			if _, err := s.st.CreateCredentialTx(ctx, tx, c); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Added by someone else since the check above.
					return &FileError{Lines: []LineError{{Line: e.Line, Err: fmt.Errorf("endpoint %q or PSK identity %q was just added by someone else", e.Endpoint, e.Identity)}}}
				}
				return err
			}
			detail, _ := json.Marshal(map[string]string{"kind": string(PSK), "psk_identity": e.Identity, "via": "import"})
			if _, err := s.st.AppendAuditTx(ctx, tx, by.Entry("credential.add", e.Endpoint, detail)); err != nil {
				return err
			}
		}
		// After the inserts, as in Add.
		return s.guardTx(ctx, tx)
	})
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return 0, err
		}
		return 0, fmt.Errorf("credential: import: %w", err)
	}
	return len(entries), nil
}
