package webhookcert

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestInjectRetriesAConflict: two replicas starting together inject the CA
// at once; the one whose write loses to the other's reads the
// configuration again and injects, instead of failing its start.
func TestInjectRetriesAConflict(t *testing.T) {
	ctx := context.Background()
	lost := 0
	c := interceptor.NewClient(fake.NewClientBuilder().WithObjects(&admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "keywarden"},
		Webhooks:   []admissionv1.ValidatingWebhook{{Name: "vapikey.keywarden.dev"}},
	}).Build(), interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if lost < 2 {
				lost++
				return apierrors.NewConflict(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}, obj.GetName(), nil)
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	})
	r := &Rotator{Client: c, Secret: types.NamespacedName{Namespace: "keywarden-system", Name: "cert"}, WebhookConfig: "keywarden",
		Names: []string{"keywarden-webhook-service.keywarden-system.svc"}, CertDir: t.TempDir(), Log: logr.Discard()}
	if err := r.Ensure(ctx); err != nil {
		t.Fatalf("two lost writes: %v", err)
	}
	hook := &admissionv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Name: "keywarden"}, hook); err != nil {
		t.Fatal(err)
	}
	if lost != 2 || len(hook.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("after %d lost writes the CA bundle holds %d bytes", lost, len(hook.Webhooks[0].ClientConfig.CABundle))
	}
}
