//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"keywarden.dev/keywarden/test/harness"
)

const consoleClass = `apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata:
  name: console-team
spec:
  keyPrefix: ct_
  maxActiveKeysPerOwner: 3
  notifications:
    url: http://127.0.0.1:9/console-team
  roles:
    - name: standard
      displayName: STANDARD
      scopes: [cache:purge, pages:read]
      scopeDescriptions:
        - scope: cache:purge
          description: Purge cached pages
`

// webConsole: an admin signs in to the console with a ServiceAccount
// token in a real headless Chromium, adds a key and sees it once (not
// after a reload), lists, searches and filters, revokes with a
// confirmation and sees verification fail; a token without rights gets
// the missing permission in words; a cross-site form post and a tampered
// cookie are refused. Screenshots of each page go to the test's directory.
func webConsole(e *env) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		e.t.Skip("Chromium is not installed (hack/chromium.sh installs Debian's chromium when run as root): the console's browser tests did not run")
	}
	ctx := context.Background()
	const ns = "console-team"
	e.kubectl("create", "namespace", ns)
	if _, err := e.kubectlIn(consoleClass, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	adminToken := e.account(ns, "console-admin", `[{"apiGroups":["keywarden.dev"],"resources":["apikeys"],"verbs":["get","list","create","patch","delete"]},`+
		`{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]},{"apiGroups":[""],"resources":["events"],"verbs":["list"]}]`, true)
	strangerToken := e.account(ns, "console-stranger", `[]`, false)
	viewerToken := e.account(ns, "console-viewer", `[{"apiGroups":["keywarden.dev"],"resources":["apikeys"],"verbs":["get","list"]}]`, false)

	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// As config/console runs it: its own ServiceAccount, bound to nothing.
	m, err := e.cluster.StartConsole(e.bin, e.logFile("console"), fmt.Sprintf("127.0.0.1:%d", port),
		"--kubeconfig", e.accountKubeconfig("keywarden-console"), "--console-trust-authorization-header")
	if err != nil {
		e.t.Fatal(err)
	}
	defer m.Stop(10 * time.Second)
	e.eventually("the console answers", 30*time.Second, func() bool {
		code, _ := status(base + "/login")
		return code == http.StatusOK
	})

	alloc, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first run starts the browser, with no timeout of its own.
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		e.t.Fatalf("starting Chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		e.t.Helper()
		step, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		if err := chromedp.Do(step, steps...); err != nil {
			now, cancel := context.WithTimeout(browser, 5*time.Second)
			defer cancel()
			page, _ := chromedp.Run(now, chromedp.Text(chromedp.CSS("main")))
			e.t.Fatalf("%s: %v; the page says:\n%s", what, err, page)
		}
	}
	text := func(sel string) string {
		e.t.Helper()
		return browse(e, browser, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
	}
	var pages strings.Builder // every page but the one that shows the key, for the leak check
	shot := func(name string) {
		e.t.Helper()
		png := browse(e, browser, "screenshot "+name, chromedp.FullScreenshot(100))
		html := browse(e, browser, "the page "+name, chromedp.OuterHTML(chromedp.CSS("html")))
		if err := os.WriteFile(filepath.Join(e.dir, "console-"+name+".png"), png, 0o644); err != nil {
			e.t.Fatal(err)
		}
		// E2E_DOCS_IMAGES=1 refreshes the README's pictures of the console.
		if os.Getenv("E2E_DOCS_IMAGES") != "" && slices.Contains([]string{"login", "keys", "add", "review", "key", "classes"}, name) {
			if err := os.WriteFile(filepath.Join(e.cluster.Root, "docs", "images", "console-"+name+".png"), png, 0o644); err != nil {
				e.t.Fatal(err)
			}
		}
		if name != "created" {
			pages.WriteString(html)
		}
	}
	signIn := func(token string) {
		e.t.Helper()
		run("sign in", chromedp.Navigate(base+"/login"), chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin")),
			chromedp.WaitVisible(chromedp.CSS("form.signout")))
	}

	// A token without rights: the missing permission, in words.
	run("the sign-in page", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("login")
	signIn(strangerToken)
	if msg := text("p.message"); !strings.Contains(msg, "You may not list API keys across all namespaces: enter a namespace above.") {
		e.t.Fatalf("a token without the right to list keys everywhere sees: %q", msg)
	}
	run("the keys of a namespace", chromedp.Navigate(base+"/keys?namespace="+ns), chromedp.WaitVisible(chromedp.CSS("p.message")))
	if msg := text("p.message"); !strings.Contains(msg, "you may not list apikeys.keywarden.dev in namespace "+ns) {
		e.t.Fatalf("a token without rights sees: %q", msg)
	}
	shot("no-permission")
	run("sign out", chromedp.Click(chromedp.CSS("form.signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))

	// A viewer may list but not create: the Add form says so.
	signIn(viewerToken)
	run("add as a viewer", chromedp.Navigate(base+"/keys/new?namespace="+ns), chromedp.SetValue(chromedp.CSS("#name"), "not-allowed"),
		chromedp.SetValue(chromedp.CSS("#displayName"), "x"), chromedp.SetValue(chromedp.CSS("#owner"), "x"), chromedp.SetValue(chromedp.CSS("#role"), "standard"),
		chromedp.Click(chromedp.CSS("#create")), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if msg := text("p.error"); !strings.Contains(msg, "you may not create apikeys.keywarden.dev in namespace "+ns) {
		e.t.Fatalf("a viewer's Add: %q", msg)
	}
	shot("no-create-permission")
	run("sign out", chromedp.Click(chromedp.CSS("form.signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))

	// The admin: the session cookie is HttpOnly, Secure and SameSite=Strict.
	signIn(adminToken)
	got, err := chromedp.Call(browser, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		e.t.Fatal(err)
	}
	cookies := got.Cookies
	if len(cookies) != 1 || !cookies[0].HTTPOnly || !cookies[0].Secure || cookies[0].SameSite != network.CookieSameSiteStrict || strings.Contains(cookies[0].Value, adminToken[:20]) {
		e.t.Fatalf("session cookies: %+v; the page says: %s", cookies, text("main"))
	}
	session := cookies[0]

	// A link chooses the namespace and the class of the Add form, nothing
	// the person would then confirm for someone else.
	run("an Add form from a link", chromedp.Navigate(base+"/keys/new?namespace="+ns+"&class=console-team&role=standard&secretName=theirs&scope.standard=cache:purge"),
		chromedp.WaitVisible(chromedp.CSS("#role-standard")))
	if prefilled := browse(e, browser, "the Add form from a link", chromedp.Evaluate[string](
		`[...document.querySelectorAll("input:checked")].map(i => i.id).join(",") + "|" + document.getElementById("secretName").value`)); prefilled != "|" {
		e.t.Fatalf("a link prefilled the Add form: %q", prefilled)
	}
	// Add a key: the class chosen in its list shows its roles at once (the
	// console's script), none of them chosen; the review names the grant;
	// the key is shown once.
	run("the Add page", chromedp.Navigate(base+"/keys/new?namespace="+ns), chromedp.WaitVisible(chromedp.CSS("#create")),
		chromedp.SetValue(chromedp.CSS("#name"), "cdn-purge"),
		// Chosen as a person does: the value, then the change event.
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => { const c = document.getElementById("class"); c.value = "console-team"; return c.dispatchEvent(new Event("change")); })()`)(ctx, t)
			return err
		}),
		chromedp.WaitVisible(chromedp.CSS("#role-standard")))
	if chosen := browse(e, browser, "the role chosen", chromedp.Evaluate[int](`document.querySelectorAll("input[name=role]:checked").length`)); chosen != 0 {
		e.t.Fatal("the Add form starts with a role chosen")
	}
	if kept := browse(e, browser, "the name typed", chromedp.Value(chromedp.CSS("#name"))); kept != "cdn-purge" {
		e.t.Fatalf("choosing a class lost what was typed: %q", kept)
	}
	checkLayout(e, browser, "the Add form")
	shot("add")
	run("review a key", chromedp.SetValue(chromedp.CSS("#displayName"), "CDN purge"),
		chromedp.SetValue(chromedp.CSS("#owner"), "alice@example.com"), chromedp.Click(chromedp.CSS("#role-standard")),
		chromedp.Click(chromedp.CSS(`input[name="scope.standard"][value="cache:purge"]`)),
		chromedp.SetValue(chromedp.CSS("#lifetime"), "30d"), chromedp.SetValue(chromedp.CSS("#rotateEvery"), "90d"), chromedp.SetValue(chromedp.CSS("#description"), "Purges the CDN after deploys"),
		chromedp.Click(chromedp.CSS("#trackLastUsed")), chromedp.Click(chromedp.CSS("#create")),
		chromedp.WaitVisible(chromedp.CSS("#create-confirmed")))
	if role, scopes := text("#review-role"), text("#review-scopes"); !strings.Contains(role, "standard") || scopes != "cache:purge" {
		e.t.Fatalf("the review names role %q and scopes %q", role, scopes)
	}
	if out, err := e.cluster.Kubectl(context.Background(), "get", "apikey", "-n", ns, "cdn-purge"); err == nil {
		e.t.Fatalf("the review created the key: %s", out)
	}
	shot("review")
	run("add the key", chromedp.Click(chromedp.CSS("#create-confirmed")), chromedp.WaitVisible(chromedp.CSS("#rawkey")))
	raw := browse(e, browser, "the key shown", chromedp.Value(chromedp.CSS("#rawkey")))
	if raw == "" || raw != e.secretKey(ns, "cdn-purge") {
		e.t.Fatalf("the page showed %d characters that are not the key in the Secret", len(raw))
	}
	if every := e.kubectl("get", "apikey", "-n", ns, "cdn-purge", "-o", "jsonpath={.spec.lifetime} {.spec.rotation.every}"); every != "720h0m0s 2160h0m0s" {
		e.t.Fatalf("the Add form's lifetime and rotation became %q", every)
	}
	// The screenshot shows the page with the key masked: artifacts keep no key.
	run("mask the key", chromedp.SetValue(chromedp.CSS("#rawkey"), strings.Repeat("•", 20)))
	shot("created")
	if got, err := verify(e.verifiers[0], map[string]any{"key": raw, "namespace": ns}); err != nil || got["valid"] != true || fmt.Sprint(got["scopes"]) != "[cache:purge]" {
		e.t.Fatalf("the key from the console verifies as %v, %v", got, err)
	}
	// Nowhere in the browser's history.
	history, err := chromedp.Call(browser, page.GetNavigationHistory, cdp.Empty{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, entry := range history.Entries {
		if strings.Contains(entry.URL, raw) || strings.Contains(entry.Title, raw) {
			e.t.Fatal("the key is in the browser's history")
		}
	}
	// Back from the key's page does not bring the key back either.
	run("the key's page", chromedp.Click(chromedp.CSS(`a[href="/keys/`+ns+`/cdn-purge"]`)), chromedp.WaitVisible(chromedp.CSS("#revoke")))
	// Chromium answers Back to the form's answer with ERR_CACHE_MISS (it
	// would have to send the form again): an error of the navigation here.
	_ = chromedp.Do(browser, chromedp.NavigateBack())
	run("back", chromedp.Sleep(time.Second))
	if back := browse(e, browser, "the page after Back", chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(back, raw) {
		e.t.Fatal("the key is shown again after Back")
	}
	run("reload", chromedp.Reload(), chromedp.Sleep(time.Second))
	html := browse(e, browser, "the page reloaded", chromedp.OuterHTML(chromedp.CSS("html")))
	if strings.Contains(html, raw) {
		e.t.Fatal("the key is shown again after a reload")
	}
	pages.WriteString(html)

	// A second key, expiring soon, from kubectl; then list, search, filter.
	if _, err := e.kubectlIn(`{"apiVersion":"keywarden.dev/v1alpha1","kind":"APIKey","metadata":{"name":"short-lived","namespace":"`+ns+`"},`+
		`"spec":{"displayName":"Short-lived","owner":"bob@example.com","role":"standard","className":"console-team","lifetime":"72h"}}`, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey/short-lived", "-n", ns, "--timeout=30s")
	shortLived := e.secretKey(ns, "short-lived")
	rows := func(query string) string {
		e.t.Helper()
		run("list "+query, chromedp.Navigate(base+"/keys?namespace="+ns+query), chromedp.WaitReady(chromedp.CSS("main")))
		return text("main")
	}
	if all := rows(""); !strings.Contains(all, "CDN purge") || !strings.Contains(all, "Short-lived") || strings.Index(all, "Short-lived") > strings.Index(all, "CDN purge") ||
		!strings.Contains(all, "untracked") {
		e.t.Fatalf("the list, newest first:\n%s", all)
	}
	// The reference products' columns: the description beside the name,
	// whether a key has expired and whether it is revoked, the role as its
	// class presents it.
	all := text("main") // headings as shown: in capitals
	for _, want := range []string{"NAME / DESCRIPTION", "HAS EXPIRED", "REVOKED", "Purges the CDN after deploys", "STANDARD"} {
		if !strings.Contains(all, want) {
			e.t.Fatalf("the list lacks %q:\n%s", want, all)
		}
	}
	shot("keys")
	if got := rows("&search=PURGES+THE"); !strings.Contains(got, "CDN purge") || strings.Contains(got, "Short-lived") {
		e.t.Fatalf("search by description:\n%s", got)
	}
	if got := rows("&view=expiring"); strings.Contains(got, "CDN purge") || !strings.Contains(got, "Short-lived") {
		e.t.Fatalf("the expiring view:\n%s", got)
	}
	if got := rows("&owner=nobody"); !strings.Contains(got, "No keys match.") {
		e.t.Fatalf("a filter that matches nothing:\n%s", got)
	}
	rows("")
	checkLayout(e, browser, "the list")
	run("the list sorted by name", chromedp.Click(chromedp.CSS("#sort-name")), chromedp.WaitVisible(chromedp.CSS(`th[aria-sort=ascending] #sort-name`)))
	if all := text("tbody"); strings.Index(all, "CDN purge") > strings.Index(all, "Short-lived") {
		e.t.Fatalf("the list sorted by name:\n%s", all)
	}
	run("the classes", chromedp.Navigate(base+"/classes?namespace="+ns), chromedp.WaitReady(chromedp.CSS("main")))
	if got := text("main"); !strings.Contains(got, "alice@example.com\t1 of 3") || !strings.Contains(got, "Keys without a class") {
		e.t.Fatalf("the classes page:\n%s", got)
	}
	shot("classes")

	// The class's shared secret: only who may read Secrets in the
	// controller's namespace sees it, and rotates it.
	run("rotate a shared secret without the rights", chromedp.Click(chromedp.CSS("#rotate-secret-console-team")), chromedp.WaitVisible(chromedp.CSS("p.message")))
	if msg := text("p.message"); !strings.Contains(msg, "you may not get secrets in namespace "+harness.ManagerNamespace) {
		e.t.Fatalf("rotating a shared secret without the rights: %q", msg)
	}
	e.kubectl("create", "role", "console-secrets", "-n", harness.ManagerNamespace, "--verb=get,create,update", "--resource=secrets")
	e.kubectl("create", "rolebinding", "console-secrets", "-n", harness.ManagerNamespace, "--role=console-secrets", "--serviceaccount="+ns+":console-admin")
	run("create the shared secret", chromedp.Navigate(base+"/classes"), chromedp.Click(chromedp.CSS("#rotate-secret-console-team")),
		chromedp.WaitVisible(chromedp.CSS("#rawkey")))
	created := browse(e, browser, "the shared secret created", chromedp.Value(chromedp.CSS("#rawkey")))
	if !strings.HasPrefix(created, "kwss_") || !strings.Contains(text("h1"), "created") {
		e.t.Fatalf("the shared secret created: %q", text("h1"))
	}
	shot("shared-secret")
	run("rotate it", chromedp.Navigate(base+"/classes"), chromedp.Click(chromedp.CSS("#rotate-secret-console-team")), chromedp.WaitVisible(chromedp.CSS("#rawkey")),
		chromedp.Navigate(base+"/classes"), chromedp.Click(chromedp.CSS("#show-secret-console-team")), chromedp.WaitVisible(chromedp.CSS("#previous")))
	shownNow := browse(e, browser, "the shared secret shown", chromedp.Value(chromedp.CSS("#rawkey")))
	shownPrevious := browse(e, browser, "the previous shared secret", chromedp.Value(chromedp.CSS("#previous")))
	if shownPrevious != created || shownNow == created || !strings.HasPrefix(shownNow, "kwss_") {
		e.t.Fatalf("after a rotation, shown %q beside the previous %q (created %q)", shownNow, shownPrevious, created)
	}
	if got := e.kubectl("get", "secret", "-n", harness.ManagerNamespace, "keywarden-notify-console-team", "-o", "jsonpath={.data.secret}"); got != base64.StdEncoding.EncodeToString([]byte(shownNow)) {
		e.t.Fatalf("the console shows a secret that is not the Secret's")
	}
	run("rotate it now, after a leak", chromedp.Navigate(base+"/classes"), chromedp.Click(chromedp.CSS("#rotate-secret-now-console-team")),
		chromedp.WaitVisible(chromedp.CSS("#rawkey")))
	afterLeak := browse(e, browser, "the shared secret after a leak", chromedp.Value(chromedp.CSS("#rawkey")))
	if got := e.kubectl("get", "secret", "-n", harness.ManagerNamespace, "keywarden-notify-console-team", "-o", "jsonpath={.data}"); afterLeak == shownNow ||
		!strings.Contains(got, base64.StdEncoding.EncodeToString([]byte(afterLeak))) || strings.Contains(got, "previous") {
		e.t.Fatalf("rotated now, the Secret does not hold the new secret alone (%d bytes of data)", len(got))
	}

	// A cross-site form post, from a page of another origin, is refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<html><body><form id="f" method="post" action="%s/keys/%s/short-lived/revoke"><input name="csrf" value="guess"></form>`+
			`<script>document.getElementById("f").submit()</script></body></html>`, base, ns)
	}))
	defer evil.Close()
	run("a cross-site post", chromedp.Navigate(evil.URL), chromedp.Sleep(2*time.Second))
	if e.kubectl("get", "apikey", "-n", ns, "short-lived", "-o", "jsonpath={.spec.revoked}") == "true" {
		e.t.Fatal("a cross-site form post revoked a key")
	}
	// A tampered cookie signs no one in.
	tampered := []byte(session.Value)
	tampered[len(tampered)/2] ^= 1
	req, _ := http.NewRequest(http.MethodGet, base+"/keys?namespace="+ns, nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: string(tampered)})
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" || strings.Contains(string(body), "CDN purge") {
		e.t.Fatalf("a tampered cookie: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		e.t.Fatalf("Content-Security-Policy: %q", csp)
	}

	// The key's page, then revoke with a confirmation naming the key.
	run("the key's page", chromedp.Navigate(base+"/keys/"+ns+"/cdn-purge"), chromedp.WaitVisible(chromedp.CSS("#revoke")))
	if got := text("main"); !strings.Contains(got, "cache:purge — Purge cached pages") || !strings.Contains(got, "KeyIssued") ||
		!strings.Contains(got, "name: cdn-purge") || strings.Contains(got, "the key fits its class. The key fits its class") {
		e.t.Fatalf("the key's page:\n%s", got)
	}
	checkLayout(e, browser, "the key's page")
	shot("key")
	run("a key's page from a link claiming an action", chromedp.Navigate(base+"/keys/"+ns+"/cdn-purge?done=revoked"), chromedp.WaitVisible(chromedp.CSS("#revoke")))
	if n := browse(e, browser, "the page's claims", chromedp.Evaluate[int](`document.querySelectorAll("#done").length`)); n != 0 {
		e.t.Fatal("a link made a key's page say an action was done")
	}
	run("a key that is not there", chromedp.Navigate(base+"/keys/"+ns+"/cdn-purg"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if title, got := text("h1"), text("main"); title != "Not found" || !strings.Contains(got, "did you mean cdn-purge?") {
		e.t.Fatalf("the page of a key that is not there: %q\n%s", title, got)
	}
	// Rotate after a confirmation: a new key in the Secret.
	run("rotate", chromedp.Navigate(base+"/keys/"+ns+"/cdn-purge"), chromedp.WaitVisible(chromedp.CSS("#rotate")),
		chromedp.Click(chromedp.CSS("#rotate")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := text("main"); !strings.Contains(got, "Rotate “CDN purge”?") {
		e.t.Fatalf("the rotation's confirmation:\n%s", got)
	}
	run("confirm the rotation", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#done")))
	if got := text("#done"); !strings.Contains(got, "The key was rotated") {
		e.t.Fatalf("after a rotation, the key's page says %q", got)
	}
	rotated := e.secretKey(ns, "cdn-purge")
	if rotated == raw {
		e.t.Fatal("rotating in the console left the key in the Secret as it was")
	}
	if got := text("main"); !strings.Contains(got, "KeyRotated") {
		e.t.Fatalf("the key's page after the rotation:\n%s", got)
	}
	raw = rotated

	run("revoke", chromedp.Click(chromedp.CSS("#revoke")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := text("main"); !strings.Contains(got, "Revoke “CDN purge”?") || !strings.Contains(got, ns+"/cdn-purge") {
		e.t.Fatalf("the confirmation:\n%s", got)
	}
	shot("revoke")
	run("confirm", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("span.phase-revoked")))
	if got, err := verify(e.verifiers[1], map[string]any{"key": raw, "namespace": ns}); err != nil || got["code"] != "REVOKED" {
		e.t.Fatalf("the key revoked in the console verifies as %v, %v", got, err)
	}
	shot("revoked")

	// Behind an authenticating proxy (--console-trust-authorization-header):
	// the person's token in the header, no sign-in; a post from another
	// site is refused all the same.
	req, _ = http.NewRequest(http.MethodGet, base+"/keys?namespace="+ns, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Short-lived") {
		e.t.Fatalf("a request through the proxy: %d", resp.StatusCode)
	}
	form := strings.NewReader("csrf=guess")
	req, _ = http.NewRequest(http.MethodPost, base+"/keys/"+ns+"/short-lived/revoke", form)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || e.kubectl("get", "apikey", "-n", ns, "short-lived", "-o", "jsonpath={.spec.revoked}") == "true" {
		e.t.Fatalf("a cross-site post through the proxy: %d", resp.StatusCode)
	}

	// Edit: the display name, the description and an earlier expiry, with
	// a date and a time; then a role the class does not offer, refused by
	// Keywarden with its reason, the key keeping its grant.
	soon := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Minute)
	run("edit", chromedp.Navigate(base+"/keys/"+ns+"/short-lived"), chromedp.WaitVisible(chromedp.CSS("#edit")),
		chromedp.Click(chromedp.CSS("#edit")), chromedp.WaitVisible(chromedp.CSS("#save")),
		chromedp.SetValue(chromedp.CSS("#displayName"), "Short-lived, renamed"), chromedp.SetValue(chromedp.CSS("#description"), "Edited in the console"),
		chromedp.SetValue(chromedp.CSS("#expiresAt"), soon.Format("2006-01-02T15:04")))
	shot("edit")
	run("save", chromedp.Click(chromedp.CSS("#save")), chromedp.WaitVisible(chromedp.CSS("#edit")))
	if got := e.kubectl("get", "apikey", "-n", ns, "short-lived", "-o", "jsonpath={.spec.displayName}|{.spec.description}|{.status.expiresAt}"); got != "Short-lived, renamed|Edited in the console|"+soon.Format(time.RFC3339) {
		e.t.Fatalf("after the edit: %s", got)
	}
	editForm, err := proxied(adminToken, http.MethodGet, base+"/keys/"+ns+"/short-lived/edit", "")
	if err != nil || editForm.code != http.StatusOK {
		e.t.Fatalf("the edit form through the proxy: %v %d", err, editForm.code)
	}
	widened, err := proxied(adminToken, http.MethodPost, base+"/keys/"+ns+"/short-lived/edit", url.Values{
		"csrf": {formValue(editForm.body, "csrf")}, "uid": {formValue(editForm.body, "uid")}, "generation": {formValue(editForm.body, "generation")},
		"displayName": {"Short-lived, renamed"}, "description": {"Edited in the console"}, "owner": {"bob@example.com"}, "role": {"admin"},
		"expiresAt": {soon.Format("2006-01-02T15:04")},
	}.Encode())
	if err != nil || widened.code != http.StatusBadRequest || !strings.Contains(widened.body, "keeps the key") || !strings.Contains(widened.body, "RoleNotAllowed") {
		e.t.Fatalf("a role the class does not offer: %v %d %s", err, widened.code, widened.body)
	}
	if role := e.kubectl("get", "apikey", "-n", ns, "short-lived", "-o", "jsonpath={.status.role}"); role != "standard" {
		e.t.Fatalf("a refused edit changed the grant's role to %q", role)
	}
	// A form filled before someone else's change writes nothing.
	stale, err := proxied(adminToken, http.MethodPost, base+"/keys/"+ns+"/short-lived/edit", url.Values{
		"csrf": {formValue(editForm.body, "csrf")}, "uid": {formValue(editForm.body, "uid")}, "generation": {formValue(editForm.body, "generation")},
		"displayName": {"Stale"}, "owner": {"bob@example.com"}, "role": {"standard"},
	}.Encode())
	if err != nil || stale.code != http.StatusConflict || !strings.Contains(stale.body, "was changed since you opened the form") ||
		e.kubectl("get", "apikey", "-n", ns, "short-lived", "-o", "jsonpath={.spec.displayName}") != "Short-lived, renamed" {
		e.t.Fatalf("an edit from a stale form: %v %d %s", err, stale.code, stale.body)
	}

	// Bulk: two keys ticked in the list, revoked after one confirmation
	// naming both; then three deleted the same way, and their calls fail.
	for _, name := range []string{"bulk-a", "bulk-b"} {
		if _, err := e.kubectlIn(`{"apiVersion":"keywarden.dev/v1alpha1","kind":"APIKey","metadata":{"name":"`+name+`","namespace":"`+ns+`"},`+
			`"spec":{"displayName":"Bulk `+name+`","owner":"carol@example.com","role":"standard","className":"console-team"}}`, "apply", "-f", "-"); err != nil {
			e.t.Fatal(err)
		}
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey/bulk-a", "apikey/bulk-b", "-n", ns, "--timeout=30s")
	bulkA := e.secretKey(ns, "bulk-a")
	tick := func(names ...string) {
		e.t.Helper()
		run("the list", chromedp.Navigate(base+"/keys?namespace="+ns), chromedp.WaitVisible(chromedp.CSS("#revoke-selected")))
		for _, n := range names {
			run("tick "+n, chromedp.Click(chromedp.CSS(`input[name=key][value="`+ns+`/`+n+`"]`)))
		}
	}
	tick("bulk-a", "bulk-b")
	run("revoke the keys ticked", chromedp.Click(chromedp.CSS("#revoke-selected")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := text("main"); !strings.Contains(got, "Revoke 2 keys?") || !strings.Contains(got, ns+"/bulk-a") || !strings.Contains(got, ns+"/bulk-b") {
		e.t.Fatalf("the confirmation of a bulk revocation:\n%s", got)
	}
	shot("revoke-selected")
	run("confirm the bulk revocation", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("ul.outcomes")))
	if got := text("main"); strings.Count(got, "revoked at") != 2 {
		e.t.Fatalf("the outcome of a bulk revocation:\n%s", got)
	}
	for _, name := range []string{"bulk-a", "bulk-b"} {
		if e.kubectl("get", "apikey", "-n", ns, name, "-o", "jsonpath={.status.phase}") != "Revoked" {
			e.t.Fatalf("%s is not revoked after the bulk revocation", name)
		}
	}
	// Revoked already: the console says so with 400, not as a failure of
	// its own.
	revokeForm, err := proxied(adminToken, http.MethodGet, base+"/keys/"+ns+"/cdn-purge/revoke", "")
	if err != nil {
		e.t.Fatal(err)
	}
	again, err := proxied(adminToken, http.MethodPost, base+"/keys/"+ns+"/cdn-purge/revoke", "csrf="+formValue(revokeForm.body, "csrf")+"&uid="+formValue(revokeForm.body, "uid"))
	if err != nil || again.code != http.StatusBadRequest || !strings.Contains(again.body, "was already revoked") {
		e.t.Fatalf("revoking a revoked key again: %v %d %s", err, again.code, again.body)
	}
	tick("bulk-a", "bulk-b", "short-lived")
	run("delete the keys ticked", chromedp.Click(chromedp.CSS("#delete-selected")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := text("main"); !strings.Contains(got, "Delete 3 keys?") || !strings.Contains(got, ns+"/short-lived") || !strings.Contains(got, "cannot be undone") {
		e.t.Fatalf("the confirmation of a bulk deletion:\n%s", got)
	}
	run("confirm the bulk deletion", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("ul.outcomes")))
	if got := text("main"); strings.Count(got, "deleted") < 3 {
		e.t.Fatalf("the outcome of a bulk deletion:\n%s", got)
	}
	shot("deleted-selected")
	for _, name := range []string{"bulk-a", "bulk-b", "short-lived"} {
		if out, err := e.cluster.Kubectl(context.Background(), "get", "apikey", "-n", ns, name); err == nil {
			e.t.Fatalf("%s is still there after the bulk deletion: %s", name, out)
		}
	}
	for _, key := range []string{bulkA, shortLived} {
		if got, err := verify(e.verifiers[0], map[string]any{"key": key, "namespace": ns}); err != nil || got["valid"] != false {
			e.t.Fatalf("a key deleted in the console verifies as %v, %v", got, err)
		}
	}
	// Delete from the key's page, after a confirmation naming it.
	run("the revoked key's page", chromedp.Navigate(base+"/keys/"+ns+"/cdn-purge"), chromedp.WaitVisible(chromedp.CSS("#delete")),
		chromedp.Click(chromedp.CSS("#delete")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := text("main"); !strings.Contains(got, "Delete “CDN purge”?") {
		e.t.Fatalf("the confirmation of a deletion:\n%s", got)
	}
	run("confirm the deletion", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("p.message")))
	if got := text("main"); !strings.Contains(got, "apikey "+ns+"/cdn-purge was deleted") {
		e.t.Fatalf("after the deletion:\n%s", got)
	}
	if out, err := e.cluster.Kubectl(context.Background(), "get", "apikey", "-n", ns, "cdn-purge"); err == nil {
		e.t.Fatalf("cdn-purge is still there after its deletion: %s", out)
	}

	// Signed out, the cookie copied before opens nothing.
	run("sign out", chromedp.Click(chromedp.CSS("form.signout button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	req, _ = http.NewRequest(http.MethodGet, base+"/keys?namespace="+ns, nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err = noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		e.t.Fatalf("the cookie of a session signed out from: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	e.mu.Lock()
	e.pluginOutput.WriteString(pages.String())
	e.mu.Unlock()
	e.note("console: signed in with a ServiceAccount token in headless Chromium, and through a proxy's header; a key added and shown once (not after a reload), verified; listed newest first, searched, filtered; rotated and revoked after confirmations naming it, then REVOKED at the verifier; no right to list or to create: the missing permission named; the key in no URL or history entry, nor back after Back; a cross-site post, a tampered cookie and one replayed after sign-out refused; the Add form from least privilege, reviewed before creation; the layout checked at 1366 and 390 px; %d screenshots", 11)
}

// checkLayout checks what the console's stylesheet promises, on the page
// shown, at a laptop's width and at a phone's: each radio button and
// checkbox is beside its label, on its line; no date in a list wraps; the
// page is no wider than the screen but for a table's own scrolling.
func checkLayout(e *env, browser context.Context, what string) {
	e.t.Helper()
	const probe = `(() => {
	  const bad = [];
	  for (const input of document.querySelectorAll("input[type=radio], input[type=checkbox]")) {
	    const label = input.id && document.querySelector("label[for='" + CSS.escape(input.id) + "']");
	    if (!label || input.offsetParent === null) continue;
	    const a = input.getBoundingClientRect(), b = label.getBoundingClientRect();
	    const mid = a.top + a.height / 2;
	    if (b.left < a.right || b.left - a.right > 16 || mid < b.top || mid > b.bottom) bad.push("the box of " + input.id + " is not beside its label");
	  }
	  for (const d of document.querySelectorAll("td .date")) {
	    if (d.getClientRects().length > 1) bad.push("a date wraps: " + d.textContent);
	  }
	  const main = document.querySelector("main");
	  if (main.scrollWidth > document.documentElement.clientWidth + 1 && !document.querySelector(".table-wrap")) bad.push("the page is wider than the screen");
	  return bad.join("; ");
	})()`
	for _, size := range []struct{ w, h int64 }{{1366, 900}, {390, 844}} {
		run := func(a ...chromedp.Action[chromedp.Void]) {
			step, cancel := context.WithTimeout(browser, time.Minute)
			defer cancel()
			if err := chromedp.Do(step, a...); err != nil {
				e.t.Fatalf("%s at %d px: %v", what, size.w, err)
			}
		}
		run(chromedp.EmulateViewport(size.w, size.h), chromedp.Sleep(200*time.Millisecond))
		if bad := browse(e, browser, what+" laid out", chromedp.Evaluate[string](probe)); bad != "" {
			e.t.Fatalf("%s at %d px: %s", what, size.w, bad)
		}
	}
	step, cancel := context.WithTimeout(browser, time.Minute)
	defer cancel()
	if err := chromedp.Do(step, chromedp.EmulateViewport(1366, 900)); err != nil {
		e.t.Fatal(err)
	}
}

// browse runs one action of the browser that returns a value.
func browse[T any](e *env, browser context.Context, what string, a chromedp.Action[T]) T {
	e.t.Helper()
	step, cancel := context.WithTimeout(browser, time.Minute)
	defer cancel()
	v, err := chromedp.Run(step, a)
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// answer is an HTTP answer: its status and body.
type answer struct {
	code int
	body string
}

// proxied sends a request as an authenticating proxy does, with the
// person's token in its header; form, when set, is the POST body.
func proxied(token, method, url, form string) (answer, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(form))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}, err
}

// formValue is the value of a form's hidden input on a page.
func formValue(page, name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}
