package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const customObject = `<?xml version="1.0" encoding="utf-8"?>
<LWM2M>
  <Object ObjectType="MODefinition">
    <Name>Valve Controller</Name>
    <Description1>A vendor object</Description1>
    <ObjectID>33001</ObjectID>
    <ObjectURN>urn:oma:lwm2m:x:33001</ObjectURN>
    <LWM2MVersion>1.1</LWM2MVersion>
    <ObjectVersion>1.0</ObjectVersion>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="0">
        <Name>Opening</Name>
        <Operations>RW</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Float</Type>
        <RangeEnumeration>0..100</RangeEnumeration>
        <Units>%</Units>
        <Description>How far the valve is open</Description>
      </Item>
    </Resources>
  </Object>
</LWM2M>
`

func TestModelsDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "33001.xml"), []byte(customObject), 0o600)
	os.WriteFile(filepath.Join(dir, "broken.xml"), []byte(strings.Replace(customObject, "<Type>Float</Type>", "<Type>Flaot</Type>", 1)), 0o600)

	cfg := testConfig(t, t.TempDir())
	cfg.ModelsDir = dir
	var logs bytes.Buffer
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	obj, ok := a.Objects.Object(33001)
	if !ok || obj.Name != "Valve Controller" {
		t.Fatalf("custom object not loaded: %+v %v", obj, ok)
	}
	if _, ok := a.Objects.Object(3303); !ok {
		t.Fatal("built-in definitions lost")
	}
	if !strings.Contains(logs.String(), "broken.xml:") || !strings.Contains(logs.String(), "Flaot") {
		t.Fatalf("bad file not reported by name and line:\n%s", logs.String())
	}

	cfg2 := testConfig(t, t.TempDir())
	cfg2.ModelsDir = filepath.Join(dir, "missing")
	if a2, err := New(context.Background(), cfg2, testLogger(t), Tuning{}); err == nil {
		a2.Stop(context.Background())
		t.Fatal("a models directory that does not exist was accepted")
	} else if !strings.Contains(err.Error(), "--models") {
		t.Fatalf("error does not name the setting: %v", err)
	}
}
