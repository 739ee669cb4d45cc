package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/notify"
	"keywarden.dev/keywarden/test/harness"
)

// receiver is a notification receiver as the docs describe one: it checks
// each notification's signature with the secret it knows and keeps the
// ids it accepted; it can be made to fail or to hang.
type receiver struct {
	mu       sync.Mutex
	secret   []byte
	mode     string // "", "fail" or "hang"
	received map[string]int
	events   []notify.Event
	bodies   [][]byte
	rejected int
	hung     int
	release  chan struct{}
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rv.mu.Lock()
	mode, secret, release := rv.mode, rv.secret, rv.release
	if mode == "hang" {
		rv.hung++
	}
	rv.mu.Unlock()
	switch mode {
	case "fail":
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	case "hang":
		<-release
		http.Error(w, "gave up", http.StatusServiceUnavailable)
		return
	}
	if err := notify.Verify(body, r.Header.Get(notify.SignatureHeader), secret, time.Now(), 5*time.Minute); err != nil {
		rv.mu.Lock()
		rv.rejected++
		rv.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var e notify.Event
	if err := json.Unmarshal(body, &e); err != nil || r.Header.Get("Content-Type") != notify.ContentType {
		http.Error(w, "not a structured CloudEvent", http.StatusBadRequest)
		return
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.received[e.ID]++
	if rv.received[e.ID] == 1 {
		rv.events = append(rv.events, e)
		rv.bodies = append(rv.bodies, body)
	}
}

func (rv *receiver) set(mode string, secret []byte) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.mode = mode
	if secret != nil {
		rv.secret = secret
	}
}

// typesOf are the types of the key's notifications received, in order.
func (rv *receiver) typesOf(k *keywardenv1alpha1.APIKey) []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var out []string
	for _, e := range rv.events {
		if e.Data.Key.Namespace == k.Namespace && e.Data.Key.Name == k.Name {
			out = append(out, e.Type)
		}
	}
	return out
}

var _ = Describe("Notifications to a class's receiver", Ordered, func() {
	var (
		rv     *receiver
		server *httptest.Server
		class  *keywardenv1alpha1.APIKeyClass
		ns     string
		secret string
	)
	secretKey := func() types.NamespacedName {
		return types.NamespacedName{Namespace: harness.ManagerNamespace, Name: notify.SecretName(class.Name)}
	}
	// rotate writes a new shared secret as an admin does.
	rotate := func(ctx context.Context, overlap time.Duration) string {
		v, err := notify.NewSecret()
		Expect(err).NotTo(HaveOccurred())
		old := &corev1.Secret{}
		if err := k8sClient.Get(ctx, secretKey(), old); err != nil {
			old = nil
		}
		s := notify.Rotate(old, harness.ManagerNamespace, class.Name, v, overlap, time.Now())
		if old == nil {
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
		} else {
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
		}
		return v
	}
	classKey := func(ctx context.Context, name string) *keywardenv1alpha1.APIKey {
		k := newAPIKey(ns, name)
		k.Spec.ClassName = class.Name
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		return k
	}

	BeforeAll(func(ctx context.Context) {
		rv = &receiver{received: map[string]int{}, release: make(chan struct{})}
		server = httptest.NewServer(rv)
		DeferCleanup(func() { close(rv.release); server.Close() })
		ns = newNamespace(ctx)
		class = newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Notifications: &keywardenv1alpha1.ClassNotifications{URL: server.URL + "/keywarden"},
		})
		secret = rotate(ctx, 0)
		rv.set("", []byte(secret))
		DeferCleanup(func(ctx context.Context) {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metaOf(secretKey())}))).To(Succeed())
		})
		Eventually(func(g Gomega) {
			c := &keywardenv1alpha1.APIKeyClass{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(class), c)).To(Succeed())
			g.Expect(c.Status.NotifyingSince).NotTo(BeNil())
			g.Expect(c.Status.NotifyingSince.Time).To(Equal(c.CreationTimestamp.Time), "a class that notifies from its creation")
		}).Should(Succeed())
	})

	It("tells the receiver of each transition once, in order, signed, and never with the key", func(ctx context.Context) {
		k := classKey(ctx, "told")
		issued := waitReady(ctx, k)
		s, err := readSecret(ctx, ns, issued.SecretName())
		Expect(err).NotTo(HaveOccurred())
		raw := s.Data[keywardenv1alpha1.SecretKeyField]

		Eventually(func() []string { return rv.typesOf(k) }).Should(Equal([]string{notify.TypeCreated}))
		cur := getKey(ctx, k)
		cur.Spec.Revoked = true
		Expect(k8sClient.Update(ctx, cur)).To(Succeed())
		waitPhase(ctx, k, keywardenv1alpha1.PhaseRevoked, 30*time.Second)
		Eventually(func() []string { return rv.typesOf(k) }).Should(Equal([]string{notify.TypeCreated, notify.TypeRevoked}))
		Eventually(func() []string { return getKey(ctx, k).Status.Notified }).Should(HaveLen(2))

		// Deleted: the receiver is told that too, with the time of the
		// deletion.
		Expect(k8sClient.Delete(ctx, getKey(ctx, k))).To(Succeed())
		Eventually(func() []string { return rv.typesOf(k) }).Should(Equal([]string{notify.TypeCreated, notify.TypeRevoked, notify.TypeDeleted}))

		// Nothing is sent twice.
		Consistently(func() int {
			rv.mu.Lock()
			defer rv.mu.Unlock()
			most := 0
			for _, n := range rv.received {
				most = max(most, n)
			}
			return most
		}, 2*time.Second).Should(Equal(1))

		rv.mu.Lock()
		defer rv.mu.Unlock()
		for i, e := range rv.events {
			if e.Data.Key.Name != k.Name {
				continue
			}
			Expect(e.Data.Key.Owner).To(Equal(k.Spec.Owner))
			Expect(e.Data.Key.Class).To(Equal(class.Name))
			Expect(e.Data.Key.KeyPrefix).NotTo(BeEmpty())
			if e.Type == notify.TypeRevoked {
				Expect(e.Data.Reason).To(Equal(notify.ReasonSpec))
			}
			// Attack: the key, its hash, the shared secret are never sent.
			body := rv.bodies[i]
			Expect(bytes.Contains(body, raw)).To(BeFalse(), "the raw key in a notification")
			Expect(bytes.Contains(body, []byte(strings.TrimPrefix(issued.Status.KeyHash, "sha256:")))).To(BeFalse(), "the key's hash in a notification")
			Expect(bytes.Contains(body, []byte(secret))).To(BeFalse(), "the shared secret in a notification")
		}
	})

	It("never holds up issuance for a receiver that hangs, and delivers everything once it answers again", func(ctx context.Context) {
		rv.set("hang", nil)
		k := classKey(ctx, "hung")
		waitReady(ctx, k)
		Eventually(func() int { rv.mu.Lock(); defer rv.mu.Unlock(); return rv.hung }).Should(BeNumerically(">=", 1))
		Expect(rv.typesOf(k)).To(BeEmpty())

		// Keys enough to take every worker wait for the hanging receiver
		// one at a time: another class's receiver is told meanwhile.
		for i := range 6 {
			classKey(ctx, fmt.Sprintf("hung-%d", i))
		}
		other := &receiver{received: map[string]int{}, release: make(chan struct{})}
		otherServer := httptest.NewServer(other)
		DeferCleanup(otherServer.Close)
		otherClass := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Notifications: &keywardenv1alpha1.ClassNotifications{URL: otherServer.URL},
		})
		v, err := notify.NewSecret()
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Create(ctx, notify.Rotate(nil, harness.ManagerNamespace, otherClass.Name, v, 0, time.Now()))).To(Succeed())
		DeferCleanup(func(ctx context.Context) {
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: harness.ManagerNamespace, Name: notify.SecretName(otherClass.Name)}})).To(Succeed())
		})
		other.set("", []byte(v))
		elsewhere := newAPIKey(ns, "elsewhere")
		elsewhere.Spec.ClassName = otherClass.Name
		Expect(k8sClient.Create(ctx, elsewhere)).To(Succeed())
		Eventually(func() []string { return other.typesOf(elsewhere) }).Should(Equal([]string{notify.TypeCreated}))
		rv.mu.Lock()
		hung := rv.hung
		rv.mu.Unlock()
		Expect(hung).To(BeNumerically("<=", 2), "keys of the hanging receiver's class were sent at once, or without backoff")

		rv.set("fail", nil)
		// Deleted while its receiver fails: the receiver is told of it,
		// and of what it missed, once it answers.
		gone := classKey(ctx, "gone")
		waitReady(ctx, gone)
		Expect(k8sClient.Delete(ctx, getKey(ctx, gone))).To(Succeed())
		cur := getKey(ctx, k)
		cur.Spec.Revoked = true
		Expect(k8sClient.Update(ctx, cur)).To(Succeed())
		waitPhase(ctx, k, keywardenv1alpha1.PhaseRevoked, 30*time.Second)
		Expect(getKey(ctx, k).Status.Notified).To(BeEmpty())

		rv.set("", nil)
		Eventually(func() []string { return rv.typesOf(k) }, 90*time.Second).Should(Equal([]string{notify.TypeCreated, notify.TypeRevoked}))
		for i := range 6 {
			Eventually(func() []string { return rv.typesOf(newAPIKey(ns, fmt.Sprintf("hung-%d", i))) }, 90*time.Second).Should(Equal([]string{notify.TypeCreated}))
		}
		Eventually(func() []string { return rv.typesOf(gone) }, 90*time.Second).Should(Equal([]string{notify.TypeCreated, notify.TypeDeleted}))
	})

	It("signs with the previous secret too while a rotation overlaps, and a receiver with a wrong secret accepts nothing", func(ctx context.Context) {
		// Rotated with an overlap: a receiver that still knows the old
		// secret accepts the notifications.
		rotate(ctx, time.Hour)
		k := classKey(ctx, "overlap")
		waitReady(ctx, k)
		Eventually(func() []string { return rv.typesOf(k) }).Should(Equal([]string{notify.TypeCreated}))

		// Attack: signed with a secret the receiver does not know (rotated
		// with no overlap, as after a leak of the old one), nothing is
		// accepted nor marked delivered.
		rv.mu.Lock()
		rejected := rv.rejected
		rv.mu.Unlock()
		rotate(ctx, 0)
		k2 := classKey(ctx, "wrong-secret")
		waitReady(ctx, k2)
		Eventually(func() int { rv.mu.Lock(); defer rv.mu.Unlock(); return rv.rejected }, 30*time.Second).Should(BeNumerically(">", rejected))
		Expect(rv.typesOf(k2)).To(BeEmpty())
		Expect(getKey(ctx, k2).Status.Notified).To(BeEmpty())

		// Given the new secret, the receiver gets what it refused.
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, secretKey(), s)).To(Succeed())
		rv.set("", s.Data[notify.SecretField])
		Eventually(func() []string { return rv.typesOf(k2) }, 90*time.Second).Should(Equal([]string{notify.TypeCreated}))
	})

	It("cannot have its acknowledgements rewritten by a namespace user", func(ctx context.Context) {
		k := classKey(ctx, "tamper")
		waitReady(ctx, k)
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: "mallory", Groups: []string{"system:authenticated"}}
		mallory, err := client.New(c, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"notified":["0123456789abcdef0123456789abcdef"]}}`))
		Expect(mallory.Status().Patch(ctx, getKey(ctx, k), patch)).NotTo(Succeed())
	})
})

func metaOf(k types.NamespacedName) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}
}

func TestNotifyingSince(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	recorded := metav1.NewTime(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	now := time.Date(2026, 12, 7, 12, 30, 15, 500, time.UTC)
	receiver := &keywardenv1alpha1.ClassNotifications{URL: "https://hooks.example.com"}
	for _, tc := range []struct {
		name       string
		generation int64
		spec       *keywardenv1alpha1.ClassNotifications
		status     *metav1.Time
		want       *time.Time
	}{
		{"no receiver", 1, nil, nil, nil},
		{"a receiver removed", 3, nil, &recorded, nil},
		{"a receiver from the class's creation", 1, receiver, nil, &created.Time},
		{"a receiver added later (an upgraded class, say)", 4, receiver, nil, ptr.To(now.Truncate(time.Second))},
		{"recorded already", 5, receiver, &recorded, &recorded.Time},
	} {
		c := &keywardenv1alpha1.APIKeyClass{
			ObjectMeta: metav1.ObjectMeta{Generation: tc.generation, CreationTimestamp: created},
			Spec:       keywardenv1alpha1.APIKeyClassSpec{Notifications: tc.spec},
			Status:     keywardenv1alpha1.APIKeyClassStatus{NotifyingSince: tc.status},
		}
		got := notifyingSince(c, now)
		switch {
		case tc.want == nil && got != nil, tc.want != nil && (got == nil || !got.Time.Equal(*tc.want)):
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
