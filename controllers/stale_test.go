package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestStaleVersions(t *testing.T) {
	var s staleVersions
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	for _, step := range []struct {
		record  []string // versions a's writes replaced, recorded before the check
		key     types.NamespacedName
		version string
		want    bool
	}{
		{key: a, version: "1", want: false}, // nothing written
		{record: []string{"1", "2"}, key: a, version: "1", want: true},
		{key: a, version: "2", want: true},  // still before the write
		{key: b, version: "1", want: false}, // another object
		{key: a, version: "3", want: false}, // the write arrived
		{key: a, version: "1", want: false}, // and the entry is gone
		{record: []string{"3"}, key: a, version: "3", want: true},
	} {
		if step.record != nil {
			s.record(a, step.record)
		}
		if got := s.stale(step.key, step.version); got != step.want {
			t.Errorf("after recording %v: stale(%s, %s) = %v, want %v", step.record, step.key, step.version, got, step.want)
		}
	}
	s.forget(a)
	if s.stale(a, "3") {
		t.Error("stale after forget")
	}
}
