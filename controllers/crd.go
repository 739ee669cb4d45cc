package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get,resourceNames=apikeys.keywarden.dev;apikeyclasses.keywarden.dev

// fieldsUsed are, by CRD, the fields this release relies on, where an API
// server whose CRD lacks them would drop them silently (and the path under
// the version's schema that holds them). Without status owner, role and
// keySerial the controller would write the same status for ever, and the
// verifier would read every key as one issued before grants were recorded;
// without spec.namespaceSelector a class meant for some namespaces would
// admit every one.
var fieldsUsed = []struct {
	plural string
	under  string
	fields []string
}{
	{"apikeys", "status", []string{"owner", "role", "keySerial"}},
	{"apikeyclasses", "spec", []string{"namespaceSelector"}},
}

// CheckCRDs fails when an installed CRD of Keywarden's is older than this
// release: it does not declare fields the manager relies on. Helm and some
// GitOps setups do not upgrade CRDs with the chart.
func CheckCRDs(ctx context.Context, c client.Reader) error {
	for _, f := range fieldsUsed {
		if err := checkCRD(ctx, c, f.plural, f.under, f.fields); err != nil {
			return err
		}
	}
	return nil
}

func checkCRD(ctx context.Context, c client.Reader, plural, under string, fields []string) error {
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	name := plural + "." + keywardenv1alpha1.GroupVersion.Group
	if err := c.Get(ctx, types.NamespacedName{Name: name}, crd); err != nil {
		return fmt.Errorf("reading the CRD %s: %w", name, err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		vm, ok := v.(map[string]any)
		if !ok || vm["name"] != keywardenv1alpha1.GroupVersion.Version {
			continue
		}
		props, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", under, "properties")
		var missing []string
		for _, f := range fields {
			if _, ok := props[f]; !ok {
				missing = append(missing, under+"."+f)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("the installed CRD %s is older than this manager (it lacks %s): apply this release's CRDs (config/crd) before starting it",
				name, strings.Join(missing, ", "))
		}
		return nil
	}
	return fmt.Errorf("the installed CRD %s does not serve version %s: apply this release's CRDs (config/crd)", name, keywardenv1alpha1.GroupVersion.Version)
}
