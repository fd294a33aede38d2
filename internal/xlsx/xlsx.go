// Package xlsx writes one-sheet Office Open XML workbooks (.xlsx) as a
// stream: rows go out as they are written, through archive/zip, so a
// workbook of any number of rows is written in constant memory. Cells
// are numbers or inline strings (no shared-string table, no styles): the
// least a spreadsheet needs to open the file. It has no dependency beyond
// the standard library.
package xlsx

import (
	"archive/zip"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxRows is the number of rows a worksheet holds at most (Excel's
// limit); WriteRow refuses more with ErrTooManyRows.
const MaxRows = 1 << 20

// ErrTooManyRows is returned by WriteRow past MaxRows.
var ErrTooManyRows = errors.New("xlsx: more rows than a worksheet holds")

// Cell is one cell: a number or a string.
type Cell struct {
	num   float64
	str   string
	isNum bool
}

// Number is a numeric cell.
func Number(f float64) Cell { return Cell{num: f, isNum: true} }

// String is a text cell.
func String(s string) Cell { return Cell{str: s} }

// Writer writes a workbook of one worksheet. It is for one goroutine.
type Writer struct {
	zw    *zip.Writer
	sheet io.Writer
	rows  int
	buf   []byte
}

const (
	contentTypes = xml.Header + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
		`<Default Extension="xml" ContentType="application/xml"/>` +
		`<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>` +
		`<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>` +
		`</Types>`
	rootRels = xml.Header + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>` +
		`</Relationships>`
	workbookRels = xml.Header + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">` +
		`<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>` +
		`</Relationships>`
	sheetStart = xml.Header + `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`
	sheetEnd   = `</sheetData></worksheet>`
)

// NewWriter starts a workbook on w with one worksheet named sheet (at most
// 31 characters, none of []:*?/\).
func NewWriter(w io.Writer, sheet string) (*Writer, error) {
	if sheet == "" || len(sheet) > 31 || strings.ContainsAny(sheet, `[]:*?/\`) {
		return nil, errors.New("xlsx: sheet name: 1 to 31 characters, none of []:*?/\\")
	}
	zw := zip.NewWriter(w)
	var name strings.Builder
	_ = xml.EscapeText(&name, []byte(sheet))
	workbook := xml.Header + `<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" ` +
		`xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>` +
		`<sheet name="` + strings.ReplaceAll(name.String(), `"`, "&#34;") + `" sheetId="1" r:id="rId1"/></sheets></workbook>`
	modified := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // a fixed time: the same rows give the same file
	for _, f := range []struct{ name, body string }{
		{"[Content_Types].xml", contentTypes},
		{"_rels/.rels", rootRels},
		{"xl/workbook.xml", workbook},
		{"xl/_rels/workbook.xml.rels", workbookRels},
	} {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(fw, f.body); err != nil {
			return nil, err
		}
	}
	sw, err := zw.CreateHeader(&zip.FileHeader{Name: "xl/worksheets/sheet1.xml", Method: zip.Deflate, Modified: modified})
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(sw, sheetStart); err != nil {
		return nil, err
	}
	return &Writer{zw: zw, sheet: sw}, nil
}

// column returns the letters of the 0-based column i ("A", "Z", "AA").
func column(i int) string {
	var b []byte
	for i++; i > 0; i = (i - 1) / 26 {
		b = append([]byte{byte('A' + (i-1)%26)}, b...)
	}
	return string(b)
}

// WriteRow writes the next row.
func (w *Writer) WriteRow(cells ...Cell) error {
	if w.rows >= MaxRows {
		return ErrTooManyRows
	}
	w.rows++
	r := strconv.Itoa(w.rows)
	b := append(w.buf[:0], `<row r="`...)
	b = append(b, r...)
	b = append(b, `">`...)
	for i, c := range cells {
		b = append(b, `<c r="`...)
		b = append(b, column(i)...)
		b = append(b, r...)
		if c.isNum {
			b = append(b, `"><v>`...)
			b = strconv.AppendFloat(b, c.num, 'g', -1, 64)
			b = append(b, `</v></c>`...)
			continue
		}
		b = append(b, `" t="inlineStr"><is><t xml:space="preserve">`...)
		b = appendEscaped(b, c.str)
		b = append(b, `</t></is></c>`...)
	}
	b = append(b, `</row>`...)
	w.buf = b
	_, err := w.sheet.Write(b)
	return err
}

// appendEscaped appends s escaped as XML text; characters XML cannot
// hold become U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return append(b, sb.String()...)
}

// Flush writes what the zip writer buffers to the underlying writer.
func (w *Writer) Flush() error { return w.zw.Flush() }

// Close ends the worksheet and the workbook. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if _, err := io.WriteString(w.sheet, sheetEnd); err != nil {
		return err
	}
	return w.zw.Close()
}
