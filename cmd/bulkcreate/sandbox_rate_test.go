package main

import (
	"reflect"
	"testing"
	"time"
)

func TestRateScheduleFlag(t *testing.T) {
	t.Parallel()
	var r rateSchedule
	if err := r.Set("10s:50, 20s:100"); err != nil {
		t.Fatalf("Set(10s:50, 20s:100) = %v", err)
	}
	want := rateSchedule{{After: 10 * time.Second, Limit: 50}, {After: 20 * time.Second, Limit: 100}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Set(10s:50, 20s:100) = %v, want %v", r, want)
	}
	if got := r.String(); got != "10s:50,20s:100" {
		t.Errorf("String() = %q, want 10s:50,20s:100", got)
	}
	for _, bad := range []string{"10s", "ten:50", "10s:fifty", ""} {
		if err := (&rateSchedule{}).Set(bad); err == nil {
			t.Errorf("Set(%q) = nil, want an error", bad)
		}
	}
}
