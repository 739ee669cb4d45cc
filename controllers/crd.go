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

// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get,resourceNames=apikeys.keywarden.dev

// statusFieldsWritten are the fields of APIKey status that this release
// writes and reads back as the key's grant and seal. An API server whose
// CRD lacks them drops them from every write: the controller would write
// the same status for ever, and the verifier would read every key as one
// issued before grants were recorded.
var statusFieldsWritten = []string{"owner", "role", "keySerial"}

// CheckAPIKeyCRD fails when the installed APIKey CRD is older than this
// release: it does not declare the status fields the controller writes.
// Helm and some GitOps setups do not upgrade CRDs with the chart.
func CheckAPIKeyCRD(ctx context.Context, c client.Reader) error {
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	name := "apikeys." + keywardenv1alpha1.GroupVersion.Group
	if err := c.Get(ctx, types.NamespacedName{Name: name}, crd); err != nil {
		return fmt.Errorf("reading the CRD %s: %w", name, err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		vm, ok := v.(map[string]any)
		if !ok || vm["name"] != keywardenv1alpha1.GroupVersion.Version {
			continue
		}
		props, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", "status", "properties")
		var missing []string
		for _, f := range statusFieldsWritten {
			if _, ok := props[f]; !ok {
				missing = append(missing, "status."+f)
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
