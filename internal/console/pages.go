package console

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones by name in any image, for the Add form's expiry

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
		// A moment as the pages show it: on one line with its zone, how
		// long ago or ahead after it, and the exact time for machines.
		"moment": func(t *metav1.Time, now time.Time) template.HTML {
			if t == nil {
				return "-"
			}
			return template.HTML(fmt.Sprintf(`<time class="date" datetime="%s">%s</time> <span class="rel">%s</span>`,
				template.HTMLEscapeString(t.UTC().Format(time.RFC3339)), template.HTMLEscapeString(t.Local().Format(keyview.TimeFormat)),
				template.HTMLEscapeString(keyview.Relative(t.Time, now))))
		},
		"expiresAt": keyview.ExpiresAt,
		"ptr":       func(t metav1.Time) *metav1.Time { return &t },
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
		"days": func(d *keywardenv1alpha1.Duration) string { return keyview.Days(d.Duration) },
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
	for _, page := range []string{"login", "message", "keys", "key", "new", "review", "created", "confirm", "classes", "selected", "edit", "sharedsecret"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
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
	field, desc := q.Get("sort"), q.Get("dir") == "desc"
	if field == "" {
		field, desc = "created", true // newest first
	}
	if err := keyview.SortBy(shown, field, desc); err != nil {
		s.message(w, r.Request, http.StatusBadRequest, "Cannot do that", err.Error(), r)
		return
	}
	pg, pages := 1, max(1, (len(shown)+pageSize-1)/pageSize)
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pages {
			s.message(w, r.Request, http.StatusNotFound, "Not found", fmt.Sprintf("There is no page %q of this list: it has %d.", v, pages), r)
			return
		}
		pg = n
	}
	from, to := (pg-1)*pageSize, min(pg*pageSize, len(shown))
	// Each column heading links to the list sorted by it: the other way
	// round when it is the column sorted by already.
	link := func(set map[string]string) string {
		u := url.Values{}
		for k, vs := range q {
			u[k] = vs
		}
		for k, v := range set {
			if v == "" {
				u.Del(k)
			} else {
				u.Set(k, v)
			}
		}
		return "/keys?" + u.Encode()
	}
	type column struct{ URL, Sort string }
	columns := map[string]column{}
	for _, f := range keyview.SortFields {
		c := column{URL: link(map[string]string{"sort": f, "dir": "", "page": ""}), Sort: "none"}
		if f == field {
			c.Sort = map[bool]string{true: "descending", false: "ascending"}[desc]
			if !desc {
				c.URL = link(map[string]string{"sort": f, "dir": "desc", "page": ""})
			}
		}
		columns[f] = c
	}
	data := map[string]any{
		"Keys": shown[from:to], "All": ns == "", "Search": filter.Search, "Phase": q.Get("phase"), "Owner": filter.Owner, "Role": filter.Role,
		"View": q.Get("view"), "Phases": keyview.Phases, "Total": len(list.Items), "Matching": len(shown), "From": from + 1, "To": to,
		"Now": now, "Roles": keyops.Ops{Client: r.client}.RoleNames(r.Context()), "Columns": columns,
	}
	if pg > 1 {
		data["Previous"] = link(map[string]string{"page": strconv.Itoa(pg - 1)})
	}
	if pg < pages {
		data["Next"] = link(map[string]string{"page": strconv.Itoa(pg + 1)})
	}
	s.render(w, r.Request, http.StatusOK, "keys", page(r, data))
}

// pageSize is how many keys a page of the list shows.
const pageSize = 50

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// doneMessages are what a key's page says, once, after an action the
// person took on it: kept in their session, so that no link can make a
// page say it.
var doneMessages = map[string]string{
	"revoked": "The key was revoked: calls with it fail, and its Secret is deleted.",
	"rotated": "The key was rotated: its Secret holds the new key, and the one replaced keeps working for its grace period.",
	"changed": "The change was saved and granted.",
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
		"Done": s.sess.takeDone(r.session.ID, ns+"/"+name), "Now": s.now(),
		"Key": k, "Scopes": scopes, "Role": keyview.RoleOf(d.Class, k.GrantedRole()), "Events": d.Events, "EventsNote": d.EventsNote, "ClassNote": d.ClassNote, "Namespace": ns,
		"Active": keyview.Phase(k) == keywardenv1alpha1.PhaseActive && !k.Spec.Revoked, "Revocable": keyops.Revocable(k) == nil,
	}))
}

// newKeyPage is the Add form; with a class chosen, its roles and scopes
// are offered as choices, none of them chosen: a key starts from the least
// privilege, and the person picks its role.
func (s *Server) newKeyPage(w http.ResponseWriter, r *request) {
	// A link may choose the namespace and the class, nothing else: not a
	// role, scopes or a Secret's name for someone else to confirm.
	q := r.URL.Query()
	s.render(w, r.Request, http.StatusOK, "new", s.newKeyData(r, map[string]any{}, url.Values{"namespace": q["namespace"], "class": q["class"]}))
}

// formFields are the Add form's fields that are carried from one step to
// the next (choosing a class, the review, a refusal).
var formFields = []string{"namespace", "name", "displayName", "owner", "class", "role", "scope", "lifetime", "expiresAt", "zone",
	"rotateEvery", "gracePeriod", "secretName", "description", "trackLastUsed"}

// zones are the time zones the Add form suggests; any IANA name is taken.
var zones = []string{"Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago", "America/Los_Angeles",
	"America/Sao_Paulo", "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney"}

// addForm is what the Add form needs of the classes: their names, the
// default one, and the chosen one's roles.
type addForm struct {
	classes      []keywardenv1alpha1.APIKeyClass
	note         string
	chosen       *keywardenv1alpha1.APIKeyClass // the class named, or the default one
	defaultClass string
}

func (s *Server) addForm(r *request, className string) addForm {
	var list keywardenv1alpha1.APIKeyClassList
	var out addForm
	if err := r.client.List(r.Context(), &list); err != nil {
		out.note = keyops.Explain(err, "list", "apikeyclasses.keywarden.dev", "").Error() + "; the classes' roles and scopes are not offered"
	}
	out.classes = list.Items
	for i := range list.Items {
		c := &list.Items[i]
		isDefault := c.Annotations[keywardenv1alpha1.AnnotationDefaultClass] == "true"
		if isDefault {
			out.defaultClass = c.Name
		}
		if c.Name == className || className == "" && isDefault {
			out.chosen = c
		}
	}
	return out
}

func (s *Server) newKeyData(r *request, data map[string]any, form url.Values) map[string]any {
	values := map[string]string{}
	for _, f := range formFields {
		values[f] = strings.TrimSpace(form.Get(f))
	}
	className := values["class"]
	af := s.addForm(r, className)
	if af.note != "" {
		data["ClassesNote"] = af.note
	}
	classNames := []string{}
	for _, c := range af.classes {
		classNames = append(classNames, c.Name)
	}
	var roles []keywardenv1alpha1.ClassRole
	ticked, descriptions := map[string]bool{}, map[string]string{}
	if af.chosen != nil && af.chosen.Name == className {
		roles = af.chosen.Spec.Roles
		for _, role := range roles {
			for _, sc := range form["scope."+role.Name] {
				ticked[role.Name+"/"+sc] = true
			}
			for _, d := range role.ScopeDescriptions {
				descriptions[role.Name+"/"+string(d.Scope)] = d.Description
			}
		}
	}
	data["Namespace"], data["Class"], data["Classes"], data["Roles"] = values["namespace"], className, classNames, roles
	data["DefaultClass"], data["Form"], data["Ticked"], data["ScopeDescriptions"], data["Zones"] = af.defaultClass, values, ticked, descriptions, zones
	return page(r, data)
}

// review is what the confirmation before creation says will be granted.
type review struct {
	Namespace, Name, DisplayName, Owner, Class, Role, Scopes, Expiry, Rotation, Secret string
	Track                                                                              bool
}

// createKey takes the Add form in three steps: choosing a class shows its
// roles; the review says what will be granted, after the API server has
// checked the key (a dry run: its validation, admission and the person's
// rights); only then is the key created with the person's token, issued,
// and shown once, read from its Secret with the same token. The page is
// the answer to the POST: the key is in no URL, and reloading asks to send
// the form again, which finds the name taken.
func (s *Server) createKey(w http.ResponseWriter, r *request) {
	f := r.PostForm
	retry := func(status int, msg string) {
		s.render(w, r.Request, status, "new", s.newKeyData(r, map[string]any{"Error": msg}, f))
	}
	if f.Get("step") == "choose" {
		s.render(w, r.Request, http.StatusOK, "new", s.newKeyData(r, map[string]any{}, f))
		return
	}
	ns, name := strings.TrimSpace(f.Get("namespace")), strings.TrimSpace(f.Get("name"))
	if ns == "" || name == "" {
		retry(http.StatusBadRequest, "A key needs a namespace and a name.")
		return
	}
	role := strings.TrimSpace(f.Get("role"))
	if role == "" {
		retry(http.StatusBadRequest, "Choose a role: a key gets only what its role grants.")
		return
	}
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: strings.TrimSpace(f.Get("displayName")), Owner: strings.TrimSpace(f.Get("owner")), Role: role,
			Description: strings.TrimSpace(f.Get("description")), ClassName: strings.TrimSpace(f.Get("class")), TrackLastUsed: f.Get("trackLastUsed") == "on",
		},
	}
	for _, sc := range formScopes(f, role) {
		k.Spec.Scopes = append(k.Spec.Scopes, keywardenv1alpha1.Scope(sc))
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
		at, err := expiryAt(v, strings.TrimSpace(f.Get("zone")))
		if err != nil {
			retry(http.StatusBadRequest, "Expires at: "+err.Error())
			return
		}
		if !at.After(s.now()) {
			retry(http.StatusBadRequest, "Expires at: "+at.Format(keyview.TimeFormat)+" is in the past: choose a later time, or a lifetime (such as 30d)")
			return
		}
		if k.Spec.Lifetime != nil {
			retry(http.StatusBadRequest, "Give a lifetime or an expiry, not both.")
			return
		}
		mt := metav1.NewTime(at)
		k.Spec.ExpiresAt = &mt
	}
	o := keyops.Ops{Client: r.client, ManagerWait: s.opts.ManagerWait}
	refused := func(err error) {
		status := http.StatusBadRequest
		if strings.Contains(err.Error(), "you may not") {
			status = http.StatusForbidden
		}
		retry(status, err.Error())
	}
	if f.Get("step") != "create" {
		// The API server's own checks, and the person's rights, before
		// anything is created.
		if err := o.Create(r.Context(), k.DeepCopy(), client.DryRunAll); err != nil {
			refused(err)
			return
		}
		carry := url.Values{}
		for key, vs := range f {
			if key != "csrf" && key != "step" {
				carry[key] = vs
			}
		}
		s.render(w, r.Request, http.StatusOK, "review", page(r, map[string]any{"Review": s.review(r, k), "Carry": carry, "Namespace": ns}))
		return
	}
	if err := o.Create(r.Context(), k); err != nil {
		refused(err)
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

// expiryAt reads the Add form's expiry: a date and time (or a date, at
// midnight) in the named zone, UTC when none is named.
func expiryAt(v, zone string) (time.Time, error) {
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return time.Time{}, fmt.Errorf("%q is not a time zone: write a name such as Europe/Berlin, America/New_York or UTC", zone)
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date and time (2027-01-31T18:00, or 2027-01-31 for midnight)", v)
}

// review says what the key will be granted, as its class will grant it:
// the scopes chosen, or every scope of the role.
func (s *Server) review(r *request, k *keywardenv1alpha1.APIKey) review {
	af := s.addForm(r, k.Spec.ClassName)
	out := review{Namespace: k.Namespace, Name: k.Name, DisplayName: k.Spec.DisplayName, Owner: k.Spec.Owner, Role: k.Spec.Role,
		Secret: k.SecretName(), Track: k.Spec.TrackLastUsed, Class: k.Spec.ClassName}
	switch {
	case out.Class == "" && af.defaultClass != "":
		out.Class = "none: the default class, " + af.defaultClass + ", applies"
	case out.Class == "":
		out.Class = "none"
	}
	var role *keywardenv1alpha1.ClassRole
	if af.chosen != nil {
		for i := range af.chosen.Spec.Roles {
			if af.chosen.Spec.Roles[i].Name == k.Spec.Role {
				role = &af.chosen.Spec.Roles[i]
			}
		}
		if d := role; d != nil && d.DisplayName != "" {
			out.Role = keyview.Clean(d.DisplayName) + " (" + k.Spec.Role + ")"
		}
	}
	scopeList := func(sc []keywardenv1alpha1.Scope) string { return strings.Join(scopeStrings(sc), ", ") }
	switch {
	case len(k.Spec.Scopes) > 0:
		out.Scopes = scopeList(k.Spec.Scopes)
	case role != nil && len(role.Scopes) > 0:
		out.Scopes = "every scope of the role: " + scopeList(role.Scopes)
	case role != nil:
		out.Scopes = "none: the role lists no scopes"
	default:
		out.Scopes = "every scope the role has in its class"
	}
	switch {
	case k.Spec.ExpiresAt != nil:
		out.Expiry = k.Spec.ExpiresAt.Format(keyview.TimeFormat)
		if utc := k.Spec.ExpiresAt.UTC().Format(keyview.TimeFormat); utc != out.Expiry {
			out.Expiry += " (" + utc + ")"
		}
	case k.Spec.Lifetime != nil:
		out.Expiry = keyview.Days(k.Spec.Lifetime.Duration) + " after issuance"
	case af.chosen != nil && af.chosen.Spec.DefaultLifetime != nil:
		out.Expiry = keyview.Days(af.chosen.Spec.DefaultLifetime.Duration) + " after issuance (the class's default)"
	default:
		out.Expiry = "never"
	}
	if rot := k.Spec.Rotation; rot != nil {
		if rot.Every != nil {
			out.Rotation = "every " + keyview.Days(rot.Every.Duration)
		} else {
			out.Rotation = "on request"
		}
		if rot.GracePeriod != nil {
			out.Rotation += ", the key replaced working " + keyview.Days(rot.GracePeriod.Duration) + " more"
		}
	}
	return out
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
	s.sess.setDone(r.session.ID, k.Namespace+"/"+k.Name, doneMessages[done])
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
	// The scopes ticked, under the role they were ticked for: the key's,
	// or what the person sent.
	ticked := map[string]bool{}
	for _, sc := range k.Spec.Scopes {
		ticked[k.Spec.Role+"/"+string(sc)] = true
	}
	if form != nil {
		ticked = map[string]bool{}
		for key, vs := range form {
			if role, ok := strings.CutPrefix(key, "scope."); ok {
				for _, sc := range vs {
					ticked[role+"/"+sc] = true
				}
			}
		}
	}
	var roles []keywardenv1alpha1.ClassRole
	if class != nil {
		roles = class.Spec.Roles
	}
	s.render(w, r.Request, status, "edit", page(r, map[string]any{
		"Key": k, "Values": values, "Roles": roles, "Ticked": ticked, "Error": problem, "Namespace": k.Namespace,
	}))
}

// formScopes are the scopes a form of the Add or Edit page asks for: typed
// (separated by commas), or ticked under the chosen role (ticks left under
// another role are not the person's choice for this one); each once, in
// order.
func formScopes(f url.Values, role string) []string {
	var scopes []string
	for _, v := range append(append([]string{}, f["scope"]...), f["scope."+role]...) {
		for sc := range strings.SplitSeq(v, ",") {
			if sc = strings.TrimSpace(sc); sc != "" && !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	return scopes
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
	role := strings.TrimSpace(f.Get("role"))
	if role == "" {
		role = k.Spec.Role
	}
	scopes := formScopes(f, role)
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
	s.sess.setDone(r.session.ID, k.Namespace+"/"+k.Name, doneMessages["changed"])
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
		Owner, Namespace string
		Active, Limit    int
	}
	type classView struct {
		Class   *keywardenv1alpha1.APIKeyClass
		Limit   int
		Usage   []usage
		Cluster bool // the limit holds across namespaces
	}
	// Active keys by class (empty: keys without one), then by owner and
	// namespace: an owner's limit holds in each namespace.
	type holder struct{ owner, namespace string }
	counts := map[string]map[holder]int{}
	var list keywardenv1alpha1.APIKeyList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	note := ""
	if err := r.client.List(r.Context(), &list, opts...); err != nil {
		note = keyops.Explain(err, "list", "apikeys.keywarden.dev", ns).Error()
		if ns == "" {
			note += ": choose a namespace to see its owners' keys"
		}
	}
	for i := range list.Items {
		k := &list.Items[i]
		if keyview.Phase(k) != keywardenv1alpha1.PhaseActive {
			continue
		}
		c := k.GrantedClass()
		if counts[c] == nil {
			counts[c] = map[holder]int{}
		}
		counts[c][holder{k.GrantedOwner(), k.Namespace}]++
	}
	usages := func(class string, limit int, cluster bool) []usage {
		held := counts[class]
		if cluster {
			// The limit holds across namespaces: one line an owner.
			where := "every namespace you may list"
			if ns != "" {
				where = ns + " only: the limit counts every namespace"
			}
			held = map[holder]int{}
			for h, n := range counts[class] {
				held[holder{h.owner, where}] += n
			}
		}
		var out []usage
		for h, n := range held {
			out = append(out, usage{Owner: h.owner, Namespace: h.namespace, Active: n, Limit: limit})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Owner != out[j].Owner {
				return out[i].Owner < out[j].Owner
			}
			return out[i].Namespace < out[j].Namespace
		})
		return out
	}
	var out []classView
	for i := range classes.Items {
		c := &classes.Items[i]
		limit := int(keywardenv1alpha1.DefaultMaxActiveKeysPerOwner)
		if c.Spec.MaxActiveKeysPerOwner != nil {
			limit = int(*c.Spec.MaxActiveKeysPerOwner)
		}
		cluster := c.Spec.OwnerLimitScope == keywardenv1alpha1.OwnerLimitCluster
		out = append(out, classView{Class: c, Limit: limit, Usage: usages(c.Name, limit, cluster), Cluster: cluster})
	}
	limit := int(keywardenv1alpha1.DefaultMaxActiveKeysPerOwner)
	s.render(w, r.Request, http.StatusOK, "classes", page(r, map[string]any{
		"Classes": out, "Note": note, "Namespace": ns, "Classless": usages("", limit, false), "ClasslessLimit": limit, "All": ns == "",
	}))
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
