package xlsx

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

type sheetXML struct {
	Rows []struct {
		R     string `xml:"r,attr"`
		Cells []struct {
			R  string `xml:"r,attr"`
			T  string `xml:"t,attr"`
			V  string `xml:"v"`
			IS struct {
				T string `xml:"t"`
			} `xml:"is"`
		} `xml:"c"`
	} `xml:"sheetData>row"`
}

// readBack reads the workbook's sheet as rows of cell texts.
func readBack(t *testing.T, b []byte) [][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	for _, name := range []string{"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml"} {
		var any struct{}
		if err := xml.Unmarshal(files[name], &any); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var wb struct {
		Sheets []struct {
			Name string `xml:"name,attr"`
		} `xml:"sheets>sheet"`
	}
	if err := xml.Unmarshal(files["xl/workbook.xml"], &wb); err != nil || len(wb.Sheets) != 1 || wb.Sheets[0].Name != `Data "1" & more` {
		t.Errorf("workbook: %+v %v", wb, err)
	}
	var s sheetXML
	if err := xml.Unmarshal(files["xl/worksheets/sheet1.xml"], &s); err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, r := range s.Rows {
		var row []string
		for _, c := range r.Cells {
			if c.T == "inlineStr" {
				row = append(row, "s:"+c.IS.T)
			} else {
				row = append(row, "n:"+c.V)
			}
		}
		out = append(out, row)
	}
	return out
}

func TestWriteAndReadBack(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, `Data "1" & more`)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRow(String("endpoint"), String("value")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRow(String("urn:a <&> \x01"), Number(21.5), Number(-3), String("  spaced ")); err != nil {
		t.Fatal(err)
	}
	many := make([]Cell, 30)
	for i := range many {
		many[i] = Number(float64(i))
	}
	if err := w.WriteRow(many...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows := readBack(t, buf.Bytes())
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	want := []string{"s:urn:a <&> \uFFFD", "n:21.5", "n:-3", "s:  spaced "}
	for i, w := range want {
		if rows[1][i] != w {
			t.Errorf("row 2 cell %d: %q, want %q", i, rows[1][i], w)
		}
	}
	if len(rows[2]) != 30 || rows[2][29] != "n:29" {
		t.Errorf("row 3: %v", rows[2])
	}
}

func TestColumn(t *testing.T) {
	for i, want := range map[int]string{0: "A", 25: "Z", 26: "AA", 27: "AB", 701: "ZZ", 702: "AAA"} {
		if got := column(i); got != want {
			t.Errorf("column(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestSheetName(t *testing.T) {
	for _, bad := range []string{"", "a/b", "this name is far longer than thirty-one"} {
		if _, err := NewWriter(io.Discard, bad); err == nil {
			t.Errorf("sheet name %q accepted", bad)
		}
	}
}
