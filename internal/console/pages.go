package console

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
	"keywarden.dev/keywarden/internal/notify"
)

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"status":   func(k *keywardenv1alpha1.APIKey) string { return keyview.Status(k) },
		"expires":  func(k *keywardenv1alpha1.APIKey) string { return keyview.Expires(k) },
		"lastUsed": func(k *keywardenv1alpha1.APIKey) string { return keyview.LastUsed(k) },
		"owner":    func(k *keywardenv1alpha1.APIKey) string { return k.GrantedOwner() },
		"role":     func(k *keywardenv1alpha1.APIKey) string { return k.GrantedRole() },
		// The role as its class presents it to people.
		"roleOf": func(n keyview.RoleNames, k *keywardenv1alpha1.APIKey) string { return n.Of(k) },
		"hasExpired": func(now time.Time, k *keywardenv1alpha1.APIKey) string {
			return yesNo(keyview.HasExpired(k, now))
		},
		"revoked": func(k *keywardenv1alpha1.APIKey) string { return yesNo(keyview.Revoked(k)) },
		"class":   func(k *keywardenv1alpha1.APIKey) string { return k.GrantedClass() },
		"scopes":  func(k *keywardenv1alpha1.APIKey) []keywardenv1alpha1.Scope { return keyview.Scopes(k) },
		"when":    func(t metav1.Time) string { return t.Local().Format(keyview.TimeFormat) },
		"days":    func(d *keywardenv1alpha1.Duration) string { return keyview.Days(d.Duration) },
		"whenp": func(t *metav1.Time) string {
			if t == nil {
				return "-"
			}
			return t.Local().Format(keyview.TimeFormat)
		},
		"condition": func(c metav1.Condition) string { return keyview.Condition(c) },
		"eventTime": func(e corev1.Event) string { return keyview.EventTime(e).Local().Format(keyview.TimeFormat) },
		"phaseClass": func(k *keywardenv1alpha1.APIKey) string {
			return "phase-" + strings.ToLower(string(keyview.Phase(k)))
		},
		"secretName": func(k *keywardenv1alpha1.APIKey) string { return k.SecretName() },
		// Text anyone who may write an APIKey, a class or an Event chose:
		// control and bidi characters shown escaped, as the plugin shows them.
		"clean": keyview.Clean,
	}
	pages := map[string]*template.Template{}
	for _, page := range []string{"login", "message", "keys", "key", "new", "created", "confirm", "classes", "selected", "edit", "sharedsecret"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		pages[page] = t
	}
	return pages, nil
}

// page is the data every signed-in page has.
func page(r *request, data map[string]any) map[string]any {
	data["User"], data["CSRF"] = r.session.User, r.csrf
	if _, ok := data["Namespace"]; !ok {
		data["Namespace"] = r.URL.Query().Get("namespace")
	}
	return data
}

// views are the list's preset filters.
var views = map[string]keyview.Filter{
	"expiring": {ExpiringWithin: 7 * 24 * time.Hour},
	"unused":   {UnusedFor: 30 * 24 * time.Hour},
}

// keys is the list of keys of a namespace, or of every namespace the
// person may list, newest first, searched and filtered.
func (s *Server) keys(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	ns := q.Get("namespace")
	filter := views[q.Get("view")]
	filter.Search, filter.Owner, filter.Role = q.Get("search"), q.Get("owner"), q.Get("role")
	if p := q.Get("phase"); p != "" {
		phase, err := keyview.ParsePhase(p)
		if err != nil {
			s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", err.Error(), r)
			return
		}
		filter.Phase = phase
	}
	var list keywardenv1alpha1.APIKeyList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := r.client.List(r.Context(), &list, opts...); err != nil {
		if ns == "" && apierrors.IsForbidden(err) {
			// Most people may list keys in some namespaces only: ask which.
			s.render(w, r.Request, http.StatusOK, "keys", page(r, map[string]any{"All": true, "Phases": keyview.Phases,
				"Prompt": "You may not list API keys across all namespaces: enter a namespace above."}))
			return
		}
		s.apiError(w, r, keyops.Explain(err, "list", "apikeys.keywarden.dev", ns))
		return
	}
	now := s.now()
	shown := keyview.Select(list.Items, filter, now)
	s.render(w, r.Request, http.StatusOK, "keys", page(r, map[string]any{
		"Keys": shown, "All": ns == "", "Search": filter.Search, "Phase": q.Get("phase"), "Owner": filter.Owner, "Role": filter.Role,
		"View": q.Get("view"), "Phases": keyview.Phases, "Total": len(list.Items), "Now": now, "Roles": keyops.Ops{Client: r.client}.RoleNames(r.Context()),
	}))
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// key is one key's page: its grant with the class's scope descriptions,
// expiry, use, Secret, conditions and events.
func (s *Server) key(w http.ResponseWriter, r *request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	o := keyops.Ops{Client: r.client}
	k, err := o.Get(r.Context(), ns, name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d := o.Details(r.Context(), k, 10)
	descriptions := keyview.ScopeDescriptions(d.Class, k.GrantedRole())
	type scope struct{ Scope, Description string }
	var scopes []scope
	for _, sc := range keyview.Scopes(k) {
		scopes = append(scopes, scope{string(sc), descriptions[sc]})
	}
	s.render(w, r.Request, http.StatusOK, "key", page(r, map[string]any{
		"Key": k, "Scopes": scopes, "Role": keyview.RoleOf(d.Class, k.GrantedRole()), "Events": d.Events, "EventsNote": d.EventsNote, "ClassNote": d.ClassNote, "Namespace": ns,
		"Active": keyview.Phase(k) == keywardenv1alpha1.PhaseActive && !k.Spec.Revoked, "Revocable": keyops.Revocable(k) == nil,
	}))
}

// newKeyPage is the Add form; with a class chosen, its roles and scopes
// are offered as choices.
func (s *Server) newKeyPage(w http.ResponseWriter, r *request) {
	s.render(w, r.Request, http.StatusOK, "new", s.newKeyData(r, map[string]any{}))
}

func (s *Server) newKeyData(r *request, data map[string]any) map[string]any {
	q := r.URL.Query()
	ns := q.Get("namespace")
	if ns == "" {
		ns = r.PostFormValue("namespace")
	}
	className := q.Get("class")
	if className == "" {
		className = r.PostFormValue("class")
	}
	var classes keywardenv1alpha1.APIKeyClassList
	classNames := []string{}
	if err := r.client.List(r.Context(), &classes); err != nil {
		data["ClassesNote"] = keyops.Explain(err, "list", "apikeyclasses.keywarden.dev", "").Error() + "; the classes' roles and scopes are not offered"
	}
	for _, c := range classes.Items {
		classNames = append(classNames, c.Name)
	}
	var roles []keywardenv1alpha1.ClassRole
	for _, c := range classes.Items {
		if c.Name == className {
			roles = c.Spec.Roles
		}
	}
	data["Namespace"], data["Class"], data["Classes"], data["Roles"] = ns, className, classNames, roles
	return page(r, data)
}

// createKey creates the key with the person's token, waits for its
// issuance, and shows it once, read from its Secret with the same token.
// The page is the answer to the POST: the key is in no URL, and
// reloading asks to send the form again, which finds the name taken.
func (s *Server) createKey(w http.ResponseWriter, r *request) {
	f := r.PostForm
	ns, name := strings.TrimSpace(f.Get("namespace")), strings.TrimSpace(f.Get("name"))
	retry := func(status int, msg string) {
		s.render(w, r.Request, status, "new", s.newKeyData(r, map[string]any{"Error": msg, "Form": f}))
	}
	if ns == "" || name == "" {
		retry(http.StatusBadRequest, "A key needs a namespace and a name.")
		return
	}
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: strings.TrimSpace(f.Get("displayName")), Owner: strings.TrimSpace(f.Get("owner")), Role: strings.TrimSpace(f.Get("role")),
			Description: strings.TrimSpace(f.Get("description")), ClassName: strings.TrimSpace(f.Get("class")), TrackLastUsed: f.Get("trackLastUsed") == "on",
		},
	}
	for _, sc := range f["scope"] {
		for _, part := range strings.Split(sc, ",") {
			if part = strings.TrimSpace(part); part != "" {
				k.Spec.Scopes = append(k.Spec.Scopes, keywardenv1alpha1.Scope(part))
			}
		}
	}
	k.Spec.SecretName = strings.TrimSpace(f.Get("secretName"))
	durations := []struct {
		field, label string
		set          func(*keywardenv1alpha1.Duration)
	}{
		{"lifetime", "Lifetime", func(d *keywardenv1alpha1.Duration) { k.Spec.Lifetime = d }},
		{"rotateEvery", "Rotate every", func(d *keywardenv1alpha1.Duration) { rotation(k).Every = d }},
		{"gracePeriod", "Grace period", func(d *keywardenv1alpha1.Duration) { rotation(k).GracePeriod = d }},
	}
	for _, field := range durations {
		if v := strings.TrimSpace(f.Get(field.field)); v != "" {
			d, err := keyview.Lifetime(v)
			if err != nil {
				retry(http.StatusBadRequest, field.label+": "+err.Error())
				return
			}
			field.set(d)
		}
	}
	if v := strings.TrimSpace(f.Get("expiresAt")); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			retry(http.StatusBadRequest, "Expires on: not a date (2027-01-31)")
			return
		}
		at := metav1.NewTime(t)
		if !at.After(s.now()) {
			retry(http.StatusBadRequest, "Expires on: "+v+" is in the past: choose a later date, or a lifetime (such as 30d)")
			return
		}
		k.Spec.ExpiresAt = &at
	}
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	if err := o.Create(r.Context(), k); err != nil {
		status := http.StatusBadRequest
		if strings.Contains(err.Error(), "you may not") {
			status = http.StatusForbidden
		}
		retry(status, err.Error())
		return
	}
	issued, err := o.WaitIssued(r.Context(), k, s.opts.IssueTimeout)
	if err != nil {
		retry(http.StatusConflict, err.Error())
		return
	}
	raw, issued, err := o.IssuedKey(r.Context(), issued)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.opts.Log.Info("Key created in the console", "user", r.session.User, "namespace", ns, "name", name, "prefix", issued.Status.KeyPrefix)
	s.render(w, r.Request, http.StatusOK, "created", page(r, map[string]any{"Key": issued, "Raw": raw, "Namespace": ns}))
}

// rotation is the key's rotation settings, made when first set.
func rotation(k *keywardenv1alpha1.APIKey) *keywardenv1alpha1.Rotation {
	if k.Spec.Rotation == nil {
		k.Spec.Rotation = &keywardenv1alpha1.Rotation{}
	}
	return k.Spec.Rotation
}

// revokePage asks for confirmation, naming the key.
func (s *Server) revokePage(w http.ResponseWriter, r *request) { s.confirmPage(w, r, "revoke") }
func (s *Server) deletePage(w http.ResponseWriter, r *request) { s.confirmPage(w, r, "delete") }
func (s *Server) rotatePage(w http.ResponseWriter, r *request) { s.confirmPage(w, r, "rotate") }

func (s *Server) confirmPage(w http.ResponseWriter, r *request, action string) {
	k, err := keyops.Ops{Client: r.client}.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.render(w, r.Request, http.StatusOK, "confirm", page(r, map[string]any{"Key": k, "Action": action, "Namespace": k.Namespace}))
}

func (s *Server) revoke(w http.ResponseWriter, r *request) {
	s.confirmedAction(w, r, "revoked", func(o keyops.Ops, k *keywardenv1alpha1.APIKey) error {
		_, err := o.Revoke(r.Context(), k, s.opts.IssueTimeout)
		return err
	})
}

func (s *Server) rotate(w http.ResponseWriter, r *request) {
	s.confirmedAction(w, r, "rotated", func(o keyops.Ops, k *keywardenv1alpha1.APIKey) error {
		_, err := o.Rotate(r.Context(), k, "console "+s.now().UTC().Format("2006-01-02T15:04:05.000Z"), s.opts.IssueTimeout)
		return err
	})
}

// confirmedAction does what the person confirmed to the key of the path,
// if it is still the key confirmed, and goes back to its page.
func (s *Server) confirmedAction(w http.ResponseWriter, r *request, done string, act func(keyops.Ops, *keywardenv1alpha1.APIKey) error) {
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	k, err := o.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err == nil {
		err = confirmed(r, k)
	}
	if err == nil {
		err = act(o, k)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.opts.Log.Info("Key "+done+" in the console", "user", r.session.User, "namespace", k.Namespace, "name", k.Name)
	http.Redirect(w, r.Request, "/keys/"+k.Namespace+"/"+k.Name, http.StatusSeeOther)
}

// confirmed checks that the key is the one the person confirmed, not one
// created under its name since.
func confirmed(r *request, k *keywardenv1alpha1.APIKey) error {
	return confirmedUID(k, r.PostFormValue("uid"))
}

func confirmedUID(k *keywardenv1alpha1.APIKey, uid string) error {
	if uid != string(k.UID) {
		return &keyops.Refused{Reason: fmt.Sprintf("apikey %s/%s is not the key you confirmed: it was deleted and created again since; look at it again", k.Namespace, k.Name)}
	}
	return nil
}

// deleteKey deletes the key confirmed, and says so on a page of its own:
// the key's page is gone with it.
func (s *Server) deleteKey(w http.ResponseWriter, r *request) {
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	k, err := o.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err == nil {
		err = confirmed(r, k)
	}
	var gone bool
	if err == nil {
		gone, err = o.Delete(r.Context(), k, min(bulkWait, s.opts.IssueTimeout))
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.opts.Log.Info("Key deleted in the console", "user", r.session.User, "namespace", k.Namespace, "name", k.Name)
	s.render(w, r.Request, http.StatusOK, "message", page(r, map[string]any{
		"Title": "Deleted", "Text": deleted(k, gone), "Namespace": k.Namespace,
	}))
}

func deleted(k *keywardenv1alpha1.APIKey, gone bool) string {
	if gone {
		return fmt.Sprintf("apikey %s/%s was deleted: calls with its key fail, and its Secret is gone.", k.Namespace, k.Name)
	}
	return fmt.Sprintf("apikey %s/%s is being deleted: calls with its key fail already; Keywarden lets it go and its Secret goes with it.", k.Namespace, k.Name)
}

// editPage is the form that changes a key's display name, description,
// owner, role, scopes and expiry, filled with its spec.
func (s *Server) editPage(w http.ResponseWriter, r *request) {
	o := keyops.Ops{Client: r.client}
	k, err := o.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.renderEdit(w, r, http.StatusOK, k, o.Details(r.Context(), k, 0).Class, nil, "")
}

func (s *Server) renderEdit(w http.ResponseWriter, r *request, status int, k *keywardenv1alpha1.APIKey, class *keywardenv1alpha1.APIKeyClass, form map[string][]string, problem string) {
	values := map[string]string{
		"displayName": k.Spec.DisplayName, "description": k.Spec.Description, "owner": k.Spec.Owner, "role": k.Spec.Role,
		"scope": strings.Join(scopeStrings(k.Spec.Scopes), ", "), "expiresAt": expiryInput(k),
		"uid": string(k.UID), "generation": strconv.FormatInt(k.Generation, 10),
	}
	for name, v := range form {
		// What the person typed, kept for the retry; never the version
		// the form is bound to.
		if _, ok := values[name]; ok && name != "scope" && name != "uid" && name != "generation" && len(v) > 0 {
			values[name] = v[0]
		}
	}
	chosen := map[string]bool{}
	for _, sc := range k.Spec.Scopes {
		chosen[string(sc)] = true
	}
	if form != nil {
		chosen = map[string]bool{}
		for _, sc := range form["scope"] {
			chosen[sc] = true
		}
	}
	var roles []keywardenv1alpha1.ClassRole
	if class != nil {
		roles = class.Spec.Roles
	}
	s.render(w, r.Request, status, "edit", page(r, map[string]any{
		"Key": k, "Values": values, "Roles": roles, "Chosen": chosen, "Error": problem, "Namespace": k.Namespace,
	}))
}

func scopeStrings(scopes []keywardenv1alpha1.Scope) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = string(sc)
	}
	return out
}

// editTimeFormat is how the edit form takes an expiry: a date and time of
// day, in UTC.
const editTimeFormat = "2006-01-02T15:04"

func expiryInput(k *keywardenv1alpha1.APIKey) string {
	switch {
	case k.Spec.ExpiresAt != nil:
		return k.Spec.ExpiresAt.UTC().Format(editTimeFormat)
	case k.Status.ExpiresAt != nil:
		return k.Status.ExpiresAt.UTC().Format(editTimeFormat)
	}
	return ""
}

// editKey writes what the person changed in the form, bound to the
// version of the key the form was filled from, and says whether
// Keywarden granted it.
func (s *Server) editKey(w http.ResponseWriter, r *request) {
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	k, err := o.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err == nil {
		err = confirmed(r, k)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	class := o.Details(r.Context(), k, 0).Class
	f := r.PostForm
	retry := func(msg string) { s.renderEdit(w, r, http.StatusBadRequest, k, class, f, msg) }
	// Bound to the spec the form was filled from (its generation): a
	// change of the spec since, by anyone, is not overwritten; a write of
	// the status (last use, say) is no change of the spec.
	if g := f.Get("generation"); g == "" || g != strconv.FormatInt(k.Generation, 10) {
		s.renderEdit(w, r, http.StatusConflict, k, class, nil,
			fmt.Sprintf("apikey %s/%s was changed since you opened the form: here it is as it is now; make your change again", k.Namespace, k.Name))
		return
	}
	changes := map[string]any{}
	text := func(field string, now string, optional bool) {
		v := strings.TrimSpace(f.Get(field))
		switch {
		case v == now:
		case v == "" && optional:
			changes[field] = nil
		default:
			changes[field] = v
		}
	}
	text("displayName", k.Spec.DisplayName, false)
	text("description", k.Spec.Description, true)
	text("owner", k.Spec.Owner, false)
	if strings.TrimSpace(f.Get("role")) != "" { // none chosen: unchanged
		text("role", k.Spec.Role, false)
	}
	var scopes []string
	for _, v := range f["scope"] {
		for sc := range strings.SplitSeq(v, ",") {
			if sc = strings.TrimSpace(sc); sc != "" && !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if !slices.Equal(scopes, scopeStrings(k.Spec.Scopes)) {
		if len(scopes) == 0 {
			changes["scopes"] = nil
		} else {
			changes["scopes"] = scopes
		}
	}
	if v := strings.TrimSpace(f.Get("expiresAt")); v != "" && v != expiryInput(k) {
		t, err := time.Parse(editTimeFormat, v)
		if err != nil {
			retry("Expires: not a date and time (2027-01-31T18:00, UTC)")
			return
		}
		changes["expiresAt"], changes["lifetime"] = t.UTC().Format(time.RFC3339), nil
	}
	if len(changes) == 0 {
		http.Redirect(w, r.Request, "/keys/"+k.Namespace+"/"+k.Name, http.StatusSeeOther)
		return
	}
	// Written against the version just read: a change between that read
	// and this write conflicts.
	_, refusedBy, err := o.Edit(r.Context(), k, changes, s.opts.IssueTimeout)
	var refusal *keyops.Refused
	switch {
	case errors.As(err, &refusal):
		retry(err.Error())
		return
	case err != nil:
		s.apiError(w, r, err)
		return
	case refusedBy != "":
		s.opts.Log.Info("Key change refused by Keywarden in the console", "user", r.session.User, "namespace", k.Namespace, "name", k.Name)
		s.render(w, r.Request, http.StatusBadRequest, "message", page(r, map[string]any{
			"Title": "Change refused", "Namespace": k.Namespace,
			"Text": "The change is in the key's spec, but Keywarden keeps the key's grant: " + refusedBy + ". Change the spec back, or ask for what the key's class allows.",
		}))
		return
	}
	s.opts.Log.Info("Key changed in the console", "user", r.session.User, "namespace", k.Namespace, "name", k.Name)
	http.Redirect(w, r.Request, "/keys/"+k.Namespace+"/"+k.Name, http.StatusSeeOther)
}

// maxSelected bounds the keys one confirmation acts on, and bulkWait how
// long their page waits for Keywarden to confirm them all.
const (
	maxSelected = 100
	bulkWait    = 20 * time.Second
)

// selectedKey is a key ticked in the list, as the confirmation names it,
// with why the action cannot apply to it.
type selectedKey struct {
	Namespace, Name string
	Key             *keywardenv1alpha1.APIKey
	Problem         string
}

// selectedPage confirms an action on the keys ticked in the list: it
// names each key, bound to the object read, and says of those the action
// cannot apply to why.
func (s *Server) selectedPage(w http.ResponseWriter, r *request) {
	action := r.PostFormValue("action")
	if action != "revoke" && action != "delete" {
		s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", "Choose Revoke or Delete for the keys ticked.", r)
		return
	}
	refs := r.PostForm["key"]
	switch {
	case len(refs) == 0:
		s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", "No key is ticked: tick the keys to "+action+" first.", r)
		return
	case len(refs) > maxSelected:
		s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", fmt.Sprintf("%d keys are ticked: act on at most %d at a time.", len(refs), maxSelected), r)
		return
	}
	o := keyops.Ops{Client: r.client}
	var keys []selectedKey
	ready := 0
	for _, ref := range slices.Compact(slices.Sorted(slices.Values(refs))) {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			continue
		}
		sk := selectedKey{Namespace: ns, Name: name}
		k, err := o.Get(r.Context(), ns, name)
		if err == nil && action == "revoke" {
			err = keyops.Revocable(k)
		}
		if err != nil {
			sk.Problem = err.Error()
		} else {
			sk.Key = k
			ready++
		}
		keys = append(keys, sk)
	}
	s.render(w, r.Request, http.StatusOK, "selected", page(r, map[string]any{"Action": action, "Keys": keys, "Ready": ready}))
}

// actOnSelected revokes or deletes the keys confirmed, each only if it is
// still the object confirmed, and says what became of each.
func (s *Server) actOnSelected(w http.ResponseWriter, r *request) {
	action := r.PathValue("action")
	if action != "revoke" && action != "delete" {
		s.message(w, r.Request, http.StatusNotFound, "Not found", "There is no such action.", r)
		return
	}
	confirmedKeys := r.PostForm["key"]
	if len(confirmedKeys) == 0 || len(confirmedKeys) > maxSelected {
		s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", fmt.Sprintf("Confirm between 1 and %d keys.", maxSelected), r)
		return
	}
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	type outcome struct {
		Namespace, Name, Done, Problem string
		key                            *keywardenv1alpha1.APIKey
	}
	var outcomes []*outcome
	// First every write, then one wait for all of them: the page answers
	// within bulkWait however many keys there are.
	for _, ref := range slices.Compact(slices.Sorted(slices.Values(confirmedKeys))) {
		parts := strings.SplitN(ref, "/", 3)
		if len(parts) != 3 {
			continue
		}
		out := &outcome{Namespace: parts[0], Name: parts[1]}
		outcomes = append(outcomes, out)
		k, err := o.Get(r.Context(), parts[0], parts[1])
		if err == nil {
			err = confirmedUID(k, parts[2])
		}
		if err == nil {
			switch action {
			case "revoke":
				err = o.MarkRevoked(r.Context(), k)
			case "delete":
				_, err = o.Delete(r.Context(), k, 0)
			}
		}
		if err != nil {
			out.Problem = err.Error()
			continue
		}
		out.key = k
		s.opts.Log.Info("Key "+action+"d in the console", "user", r.session.User, "namespace", k.Namespace, "name", k.Name)
	}
	deadline := time.Now().Add(min(bulkWait, s.opts.IssueTimeout))
	failed := 0
	for _, out := range outcomes {
		if out.key == nil {
			failed++
			continue
		}
		wait := max(time.Until(deadline), 0)
		switch action {
		case "revoke":
			at, err := o.WaitRevoked(r.Context(), out.key, wait)
			if err != nil {
				out.Problem = err.Error()
				failed++
				continue
			}
			out.Done = "revoked at " + at.Local().Format(keyview.TimeFormat)
		case "delete":
			gone, err := o.WaitGone(r.Context(), out.key, wait)
			if err != nil {
				out.Problem = err.Error()
				failed++
				continue
			}
			out.Done = deleted(out.key, gone)
		}
	}
	status := http.StatusOK
	if failed > 0 {
		status = http.StatusBadRequest
	}
	s.render(w, r.Request, status, "selected", page(r, map[string]any{"Action": action, "Outcomes": outcomes, "Failed": failed}))
}

// classes lists the classes with their roles and limits, and, in a
// namespace, how many active keys each owner holds under them.
func (s *Server) classes(w http.ResponseWriter, r *request) {
	ns := r.URL.Query().Get("namespace")
	var classes keywardenv1alpha1.APIKeyClassList
	if err := r.client.List(r.Context(), &classes); err != nil {
		s.apiError(w, r, keyops.Explain(err, "list", "apikeyclasses.keywarden.dev", ""))
		return
	}
	type usage struct {
		Owner         string
		Active, Limit int
	}
	type classView struct {
		Class *keywardenv1alpha1.APIKeyClass
		Limit int
		Usage []usage
	}
	counts := map[string]map[string]int{} // class -> owner -> active keys
	note := ""
	if ns != "" {
		var list keywardenv1alpha1.APIKeyList
		if err := r.client.List(r.Context(), &list, client.InNamespace(ns)); err != nil {
			note = keyops.Explain(err, "list", "apikeys.keywarden.dev", ns).Error()
		}
		for i := range list.Items {
			k := &list.Items[i]
			if keyview.Phase(k) != keywardenv1alpha1.PhaseActive {
				continue
			}
			c := k.GrantedClass()
			if counts[c] == nil {
				counts[c] = map[string]int{}
			}
			counts[c][k.GrantedOwner()]++
		}
	}
	var out []classView
	for i := range classes.Items {
		c := &classes.Items[i]
		limit := int(keywardenv1alpha1.DefaultMaxActiveKeysPerOwner)
		if c.Spec.MaxActiveKeysPerOwner != nil {
			limit = int(*c.Spec.MaxActiveKeysPerOwner)
		}
		v := classView{Class: c, Limit: limit}
		for owner, n := range counts[c.Name] {
			v.Usage = append(v.Usage, usage{owner, n, limit})
		}
		sort.Slice(v.Usage, func(i, j int) bool { return v.Usage[i].Owner < v.Usage[j].Owner })
		out = append(out, v)
	}
	s.render(w, r.Request, http.StatusOK, "classes", page(r, map[string]any{"Classes": out, "Note": note, "Namespace": ns}))
}

// sharedSecretOverlap is how long a secret the console replaces keeps
// signing beside the new one.
const sharedSecretOverlap = 24 * time.Hour

// sharedSecret shows a class's shared secret, or rotates it and shows the
// new one, with the person's own rights: only who may read (or write) the
// Secret in the controller's namespace sees it. Both are POSTs, so that
// the secret is never in a URL, a history or a cache.
func (s *Server) sharedSecret(w http.ResponseWriter, r *request) {
	class, ns := r.PathValue("name"), s.opts.ControllerNamespace
	o := keyops.Ops{Client: r.client}
	view := map[string]any{"Class": class, "Secret": ns + "/" + notify.SecretName(class)}
	switch r.PathValue("action") {
	case "show":
		ss, err := o.ReadSharedSecret(r.Context(), ns, class, s.now())
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		var texts []string
		for _, b := range ss.Secrets {
			texts = append(texts, string(b))
		}
		view["Secrets"], view["Until"] = texts, ss.Until
	case "rotate", "rotate-now":
		overlap := sharedSecretOverlap
		if r.PathValue("action") == "rotate-now" {
			// After a leak: the old secret stops signing at once.
			overlap = 0
		}
		k, value, replaced, err := o.RotateSharedSecret(r.Context(), ns, class, overlap, s.now())
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		s.opts.Log.Info("Shared secret rotated in the console", "user", r.session.User, "class", class, "replaced", replaced, "overlap", overlap.String())
		view["Secrets"], view["Rotated"], view["Replaced"] = []string{value}, true, replaced
		if n := k.Spec.Notifications; n != nil {
			view["URL"] = n.URL
		}
	default:
		http.NotFound(w, r.Request)
		return
	}
	s.render(w, r.Request, http.StatusOK, "sharedsecret", page(r, view))
}
