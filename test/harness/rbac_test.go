package harness

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// managerRights are the rights the controller's code uses (its
// ServiceAccount is keywarden-manager), one line per verb: "scope
// group/resource[/names] verb", scope being "cluster" or the namespace a
// Role grants it in. Each line is what a feature needs:
//
//   - APIKeys and their status and finalizers: the controller.
//   - APIKeyClasses and their status: the class policy and the class
//     controller.
//   - Secrets: issuing, adopting, rotating in place and deleting keys;
//     the sealing key. The admission policy of config/rbac
//     narrows these further.
//   - Namespaces: the classes' namespaceSelector.
//   - Events: the controllers' events.
//   - CRDs, by name: the start-up check of the installed CRDs.
//   - TokenReviews and SubjectAccessReviews: the secured metrics endpoint.
//   - Leases: leader election, in the manager's namespace.
//   - The verifier's certificate Secrets (the CA's, and the serving pair
//     the verifiers read) and CA ConfigMap, by name (create cannot be
//     limited by name): the controller issues, renews and publishes the
//     verifier's certificate.
//   - The webhook's certificate Secret and its own webhook configuration,
//     by name: only where Keywarden issues the webhook's certificate.
var managerRights = func() map[string][]string {
	base := []string{
		"cluster keywarden.dev/apikeys get", "cluster keywarden.dev/apikeys list", "cluster keywarden.dev/apikeys watch",
		"cluster keywarden.dev/apikeys update", "cluster keywarden.dev/apikeys patch",
		"cluster keywarden.dev/apikeys/status get", "cluster keywarden.dev/apikeys/status update", "cluster keywarden.dev/apikeys/status patch",
		"cluster keywarden.dev/apikeys/finalizers update",
		"cluster keywarden.dev/apikeyclasses get", "cluster keywarden.dev/apikeyclasses list", "cluster keywarden.dev/apikeyclasses watch",
		"cluster keywarden.dev/apikeyclasses/status get", "cluster keywarden.dev/apikeyclasses/status update", "cluster keywarden.dev/apikeyclasses/status patch",
		"cluster core/secrets get", "cluster core/secrets list", "cluster core/secrets watch", "cluster core/secrets create", "cluster core/secrets update", "cluster core/secrets patch", "cluster core/secrets delete",
		"cluster core/namespaces get", "cluster core/namespaces list", "cluster core/namespaces watch",
		"cluster events.k8s.io/events create", "cluster events.k8s.io/events patch",
		"cluster apiextensions.k8s.io/customresourcedefinitions/apikeys.keywarden.dev get",
		"cluster apiextensions.k8s.io/customresourcedefinitions/apikeyclasses.keywarden.dev get",
		"cluster authentication.k8s.io/tokenreviews create",
		"cluster authorization.k8s.io/subjectaccessreviews create",
		"keywarden-system coordination.k8s.io/leases get", "keywarden-system coordination.k8s.io/leases list",
		"keywarden-system coordination.k8s.io/leases watch", "keywarden-system coordination.k8s.io/leases create",
		"keywarden-system coordination.k8s.io/leases update", "keywarden-system coordination.k8s.io/leases patch",
		"keywarden-system coordination.k8s.io/leases delete",
		"keywarden-system events.k8s.io/events create", "keywarden-system events.k8s.io/events patch",
		"keywarden-system core/events create", "keywarden-system core/events patch",
		"keywarden-system core/secrets/keywarden-verifier-cert get", "keywarden-system core/secrets/keywarden-verifier-cert update",
		"keywarden-system core/secrets/keywarden-verifier-tls get", "keywarden-system core/secrets/keywarden-verifier-tls update",
		"keywarden-system core/configmaps create",
		"keywarden-system core/configmaps/keywarden-verifier-ca get", "keywarden-system core/configmaps/keywarden-verifier-ca update",
	}
	webhook := append(slices.Clone(base),
		"keywarden-system core/secrets/keywarden-webhook-cert get", "keywarden-system core/secrets/keywarden-webhook-cert update",
		"cluster admissionregistration.k8s.io/validatingwebhookconfigurations/keywarden-validating-webhook-configuration get",
		"cluster admissionregistration.k8s.io/validatingwebhookconfigurations/keywarden-validating-webhook-configuration patch",
	)
	keys := func(ns string) []string {
		var out []string
		for _, r := range []string{
			"keywarden.dev/apikeys get", "keywarden.dev/apikeys list", "keywarden.dev/apikeys watch",
			"keywarden.dev/apikeys update", "keywarden.dev/apikeys patch",
			"keywarden.dev/apikeys/status get", "keywarden.dev/apikeys/status update", "keywarden.dev/apikeys/status patch",
			"keywarden.dev/apikeys/finalizers update",
			"core/secrets get", "core/secrets list", "core/secrets watch", "core/secrets create", "core/secrets update", "core/secrets patch", "core/secrets delete",
			"events.k8s.io/events create", "events.k8s.io/events patch",
		} {
			out = append(out, ns+" "+r)
		}
		return out
	}
	// --namespaces team-a,team-b: nothing namespaced cluster-wide.
	namespaced := append(keys("team-a"), keys("team-b")...)
	namespaced = append(namespaced,
		"cluster keywarden.dev/apikeyclasses get", "cluster keywarden.dev/apikeyclasses list", "cluster keywarden.dev/apikeyclasses watch",
		"cluster keywarden.dev/apikeyclasses/status get", "cluster keywarden.dev/apikeyclasses/status update", "cluster keywarden.dev/apikeyclasses/status patch",
		"cluster apiextensions.k8s.io/customresourcedefinitions/apikeys.keywarden.dev get",
		"cluster apiextensions.k8s.io/customresourcedefinitions/apikeyclasses.keywarden.dev get",
		"cluster authentication.k8s.io/tokenreviews create",
		"cluster authorization.k8s.io/subjectaccessreviews create",
		"cluster core/namespaces/team-a get", "cluster core/namespaces/team-b get",
		"keywarden-system core/secrets create", "keywarden-system core/secrets/keywarden-sealing-key get",
	)
	for _, r := range base {
		if strings.HasPrefix(r, "keywarden-system ") {
			namespaced = append(namespaced, r)
		}
	}
	return map[string][]string{
		"config/namespaced":                namespaced,
		"config/rbac":                      base,
		"config/base":                      base,
		"config/default":                   webhook,
		"config/with-webhook":              webhook,
		"config/with-webhook-cert-manager": base,
	}
}()

// verifierRights are the rights the verifier's code uses, as
// managerRights: reading APIKeys and patching their status (the admission
// policy of config/rbac narrows that to lastUsedAt and revocations),
// reading a class for its revokeOnReuse, its events, the reviews of its
// secured metrics, and the Secret of its serving pair by name (never the
// one that keeps the CA's key). No other Secret, in any verb.
var verifierRights = func() map[string][]string {
	reviews := []string{"cluster authentication.k8s.io/tokenreviews create", "cluster authorization.k8s.io/subjectaccessreviews create",
		"cluster keywarden.dev/apikeyclasses get", "keywarden-system core/secrets/keywarden-verifier-tls get"}
	keys := func(scope string) []string {
		return []string{scope + " keywarden.dev/apikeys get", scope + " keywarden.dev/apikeys list", scope + " keywarden.dev/apikeys watch",
			scope + " keywarden.dev/apikeys/status patch", scope + " events.k8s.io/events create", scope + " events.k8s.io/events patch"}
	}
	base := append(keys("cluster"), reviews...)
	namespaced := append(append(keys("team-a"), keys("team-b")...), reviews...)
	return map[string][]string{
		"config/namespaced":                namespaced,
		"config/rbac":                      base,
		"config/base":                      base,
		"config/default":                   base,
		"config/with-webhook":              base,
		"config/with-webhook-cert-manager": base,
	}
}()

// TestComponentRBAC renders every install and compares what it grants each
// component's ServiceAccount with the rights its code uses, both ways: a
// right the code does not use (a widening) fails, and so does one it needs
// and the install lacks. The console's account holds none.
func TestComponentRBAC(t *testing.T) {
	for _, c := range []struct {
		account string
		rights  map[string][]string
	}{
		{"keywarden-manager", managerRights},
		{"keywarden-verifier", verifierRights},
		{"keywarden-console", nil},
	} {
		for _, dir := range []string{"config/namespaced", "config/rbac", "config/base", "config/default", "config/with-webhook", "config/with-webhook-cert-manager"} {
			want := slices.Clone(c.rights[dir])
			t.Run(c.account+"/"+dir, func(t *testing.T) {
				got, err := rightsOf(dir, "keywarden-system", c.account)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(want)
				for _, r := range got {
					if _, found := slices.BinarySearch(want, r); !found {
						t.Errorf("%s grants %s %q, which its code does not use", dir, c.account, r)
					}
				}
				for _, r := range want {
					if !slices.Contains(got, r) {
						t.Errorf("%s does not grant %s %q, which its code uses", dir, c.account, r)
					}
				}
			})
		}
	}
}

// TestUserRolesHoldNoSecrets: the roles config/rbac aggregates into the
// built-in admin, edit and view roles grant nothing on Secrets, and no
// write of the status Keywarden trusts.
func TestUserRolesHoldNoSecrets(t *testing.T) {
	objs, err := Kustomize("config/rbac")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		l := o.GetLabels()
		if o.GetKind() != "ClusterRole" || l["rbac.authorization.k8s.io/aggregate-to-admin"] == "" &&
			l["rbac.authorization.k8s.io/aggregate-to-edit"] == "" && l["rbac.authorization.k8s.io/aggregate-to-view"] == "" {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			writes := slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })
			for _, res := range r.Resources {
				if res == "secrets" || res == "*" || strings.HasSuffix(res, "/status") && writes {
					t.Errorf("the aggregated role %s grants %v on %s", role.Name, r.Verbs, res)
				}
			}
		}
	}
}

// rightsOf lists, one line per verb as in managerRights, what the
// kustomization grants the ServiceAccount through its bindings.
func rightsOf(dir, namespace, account string) ([]string, error) {
	objs, err := Kustomize(dir)
	if err != nil {
		return nil, err
	}
	rules := map[string][]rbacv1.PolicyRule{} // by "Kind/namespace/name"
	var bindings []rbacv1.RoleBinding         // ClusterRoleBindings with no namespace
	for _, o := range objs {
		switch o.GetKind() {
		case "Role", "ClusterRole":
			if _, aggregated := o.Object["aggregationRule"]; aggregated && o.GetKind() == "ClusterRole" {
				return nil, fmt.Errorf("%s aggregates other roles: what it grants cannot be read from the manifests", o.GetName())
			}
			var role rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				return nil, err
			}
			rules[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = role.Rules
		case "RoleBinding", "ClusterRoleBinding":
			var b rbacv1.RoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				return nil, err
			}
			bindings = append(bindings, b)
		}
	}
	var out []string
	for _, b := range bindings {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return names(s, namespace, account) }) {
			continue
		}
		ref := b.RoleRef.Kind + "/"
		if b.RoleRef.Kind == "Role" {
			ref += b.Namespace
		}
		granted, ok := rules[ref+"/"+b.RoleRef.Name]
		if !ok {
			return nil, fmt.Errorf("%s binds %s %s, which it does not hold", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		scope := "cluster"
		if b.Namespace != "" {
			scope = b.Namespace
		}
		for _, r := range granted {
			for _, line := range ruleLines(scope, r) {
				if !slices.Contains(out, line) {
					out = append(out, line)
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// names reports whether a binding's subject includes the ServiceAccount:
// the account itself, its user name, or a group it is in.
func names(s rbacv1.Subject, namespace, account string) bool {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		return s.Namespace == namespace && s.Name == account
	case rbacv1.UserKind:
		return s.Name == "system:serviceaccount:"+namespace+":"+account
	case rbacv1.GroupKind:
		return s.Name == "system:serviceaccounts" || s.Name == "system:serviceaccounts:"+namespace ||
			s.Name == "system:authenticated"
	}
	return false
}

func ruleLines(scope string, r rbacv1.PolicyRule) []string {
	var out []string
	names := r.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	for _, g := range r.APIGroups {
		if g == "" {
			g = "core"
		}
		for _, res := range r.Resources {
			for _, n := range names {
				target := g + "/" + res
				if n != "" {
					target += "/" + n
				}
				for _, v := range r.Verbs {
					out = append(out, scope+" "+target+" "+v)
				}
			}
		}
	}
	for _, u := range r.NonResourceURLs {
		for _, v := range r.Verbs {
			out = append(out, scope+" "+u+" "+v)
		}
	}
	return out
}
