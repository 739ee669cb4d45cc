package controllers

import (
	"context"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// series is one gathered sample: its metric, its labels and its value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// gatherNamespace scrapes the suite's metrics as Prometheus does and keeps
// the series of one namespace.
func gatherNamespace(ns string) []series {
	rec := httptest.NewRecorder()
	scrapeMetrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	ExpectWithOffset(1, rec.Code).To(Equal(200), rec.Body.String())
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var out []series
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != ns {
				continue
			}
			out = append(out, series{f.GetName(), labels, value(f.GetType(), m)})
		}
	}
	return out
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	if t == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// find returns the value of the series of that name whose labels include
// these, and whether there is one.
func find(all []series, name string, labels map[string]string) (float64, bool) {
	for _, s := range all {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

var _ = Describe("Metrics", func() {
	It("export each key's phase, issuance, expiry and last use, the counts by phase and stall, and what passes did, as the objects say", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles:                 []keywardenv1alpha1.ClassRole{{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}}},
			MaxActiveKeysPerOwner: ptr.To(int32(2)),
		})
		create := func(name string, mutate func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
			k := newAPIKey(ns, name)
			k.Spec.ClassName = c.Name
			if mutate != nil {
				mutate(k)
			}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			return k
		}
		tracked := create("tracked", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.TrackLastUsed, k.Spec.Lifetime = true, &keywardenv1alpha1.Duration{Duration: 24 * time.Hour}
		})
		used := create("used", func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true })
		waitReady(ctx, tracked)
		issuedUsed := waitReady(ctx, used)
		lastUsed := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
		Expect(k8sClient.Status().Patch(ctx, issuedUsed, client.RawPatch(types.MergePatchType,
			[]byte(`{"status":{"lastUsedAt":"`+lastUsed.UTC().Format(time.RFC3339)+`"}}`)))).To(Succeed())
		refused := create("refused", nil)
		waitRefused(ctx, refused)
		stalled := create("stalled", func(k *keywardenv1alpha1.APIKey) { k.Spec.Role, k.Spec.Scopes = "admin", nil })
		waitStalled(ctx, stalled, keywardenv1alpha1.ReasonRoleNotAllowed)
		reissued := waitReady(ctx, tracked)
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tracked"}})).To(Succeed())
		waitReissued(ctx, reissued)

		Eventually(func(g Gomega) {
			all := gatherNamespace(ns)
			var list keywardenv1alpha1.APIKeyList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(4))
			phases := map[string]float64{}
			for _, k := range list.Items {
				name := map[string]string{"name": k.Name, "class": c.Name}
				phases[string(k.Status.Phase)]++
				v, ok := find(all, "keywarden_apikey_phase", map[string]string{"name": k.Name, "phase": string(k.Status.Phase)})
				g.Expect(ok).To(BeTrue(), "no phase series for %s in %s", k.Name, k.Status.Phase)
				g.Expect(v).To(Equal(1.0))
				v, ok = find(all, "keywarden_apikey_expiration_timestamp_seconds", name)
				g.Expect(ok).To(Equal(k.Status.ExpiresAt != nil), k.Name)
				if ok {
					g.Expect(v).To(Equal(float64(k.Status.ExpiresAt.Unix())), k.Name)
				}
				v, ok = find(all, "keywarden_apikey_issued_timestamp_seconds", name)
				g.Expect(ok).To(Equal(k.Status.IssuedAt != nil), k.Name)
				if ok {
					g.Expect(v).To(Equal(float64(k.Status.IssuedAt.Unix())), k.Name)
				}
				v, ok = find(all, "keywarden_apikey_last_used_timestamp_seconds", name)
				g.Expect(ok).To(Equal(k.Spec.TrackLastUsed), k.Name)
				switch {
				case k.Status.LastUsedAt != nil:
					g.Expect(v).To(Equal(float64(k.Status.LastUsedAt.Unix())), k.Name)
				case ok:
					g.Expect(v).To(BeZero(), "%s was never used", k.Name)
				}
			}
			g.Expect(phases).To(Equal(map[string]float64{"Active": 2, "Refused": 1, "Pending": 1}))
			for phase, n := range phases {
				v, _ := find(all, "keywarden_apikeys", map[string]string{"class": c.Name, "phase": phase})
				g.Expect(v).To(Equal(n), phase)
			}
			v, _ := find(all, "keywarden_apikeys_stalled", map[string]string{"reason": keywardenv1alpha1.ReasonRoleNotAllowed})
			g.Expect(v).To(Equal(1.0))
			v, _ = find(all, "keywarden_apikey_last_used_timestamp_seconds", map[string]string{"name": "used"})
			g.Expect(v).To(Equal(float64(lastUsed.Unix())))

			counters := map[string]float64{
				"keywarden_key_issuances_total": 2, "keywarden_key_reissues_total": 1, "keywarden_key_refusals_total": 1,
			}
			for name, want := range counters {
				v, _ := find(all, name, map[string]string{"class": c.Name})
				g.Expect(v).To(Equal(want), name)
			}
			v, _ = find(all, "keywarden_key_stalls_total", map[string]string{"class": c.Name, "reason": keywardenv1alpha1.ReasonRoleNotAllowed})
			g.Expect(v).To(Equal(1.0), "a stall is counted once, however many passes find it")
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	})
})
