// SPDX-License-Identifier: Apache-2.0

package config

import (
	"reflect"
	"testing"
	"time"
)

func TestChangedKnowsEveryKey(t *testing.T) {
	for _, k := range keyDefs() {
		if _, ok := fieldOf[k.name]; !ok {
			t.Errorf("key %q has no entry in fieldOf: SIGHUP could not tell whether it changed", k.name)
		}
	}
}

func TestChanged(t *testing.T) {
	a := Default()
	if got := Changed(a, Default()); len(got) != 0 {
		t.Errorf("Changed(default, default) = %q", got)
	}
	b := Default()
	b.Timeout = 5 * time.Second
	b.LogLevel = 7
	b.Interfaces = append(b.Interfaces, Interface{Name: "x", Addr: b.Interfaces[0].Addr})
	b.B2BURL = "http://127.0.0.1/"
	want := []string{"interface", "timeout", "log-level", "b2b-url"}
	if got := Changed(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("Changed = %q, want %q", got, want)
	}
}
