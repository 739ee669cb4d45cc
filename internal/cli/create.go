package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyview"
	"keywarden.dev/keywarden/internal/policy"
)

type createOptions struct {
	displayName, owner, role, description, class string
	scopes                                       []string
	lifetime, expiresAt                          string
	trackLastUsed                                bool
	dryRun, output                               string
	timeout                                      time.Duration
}

func (a *app) createCommand() *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create NAME --display-name TEXT --owner OWNER --role ROLE",
		Short: "Create a key, wait until it is issued, and print it once",
		Long: `Create an APIKey, wait until Keywarden issues it, and print the raw key on
standard output, once and alone, so that KEY=$(kubectl keywarden create ...)
works; everything else goes to standard error. Keywarden keeps only the
key's hash; the key stays in its Secret for workloads.

When the key is refused (its owner holds as many keys as the class allows)
or its class does not allow it, the command says why, deletes the APIKey it
created, and exits 1: nothing was issued.

With --dry-run=client it prints the manifest instead (-o yaml or json), for
Git.`,
		Example: `  KEY=$(kubectl keywarden create wordpress-purge -n team-a \
    --display-name "WordPress purge plugin" --owner alice@example.com \
    --role standard --scope cache:purge --lifetime 90d)
  kubectl keywarden create ci --display-name CI --owner ci --role readonly --dry-run=client -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.create(cmd.Context(), args[0], o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.displayName, "display-name", "", "the key's human-readable name (required)")
	f.StringVar(&o.owner, "owner", "", "the user or team the key belongs to (required)")
	f.StringVar(&o.role, "role", "", "the key's role (required)")
	f.StringSliceVar(&o.scopes, "scope", nil, "a scope the key grants; repeat it or separate with commas (none: all its role's scopes in its class)")
	f.StringVar(&o.lifetime, "lifetime", "", "how long the key is valid after issuance: 30d, 1d12h, 720h")
	f.StringVar(&o.expiresAt, "expires-at", "", "when the key stops being valid: RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31, midnight UTC)")
	f.StringVar(&o.class, "class", "", "the APIKeyClass whose policy applies (default: the cluster's default class)")
	f.StringVar(&o.description, "description", "", "what the key is for, for the people who review keys")
	f.BoolVar(&o.trackLastUsed, "track-last-used", false, "record when the key was last used")
	f.StringVar(&o.dryRun, "dry-run", "none", `"client" prints the manifest instead of creating it`)
	f.StringVarP(&o.output, "output", "o", "", "with --dry-run=client: yaml (default) or json")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long to wait for the key to be issued")
	for _, name := range []string{"display-name", "owner", "role"} {
		_ = cmd.MarkFlagRequired(name)
	}
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "client"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// manifest builds the APIKey the options declare.
func (o createOptions) manifest(ns, name string) (*keywardenv1alpha1.APIKey, error) {
	k := &keywardenv1alpha1.APIKey{
		TypeMeta:   metav1.TypeMeta{APIVersion: keywardenv1alpha1.GroupVersion.String(), Kind: keywardenv1alpha1.APIKeyKind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: o.displayName, Owner: o.owner, Role: o.role, Description: o.description,
			ClassName: o.class, TrackLastUsed: o.trackLastUsed,
		},
	}
	for _, s := range o.scopes {
		if s = strings.TrimSpace(s); s != "" {
			k.Spec.Scopes = append(k.Spec.Scopes, keywardenv1alpha1.Scope(s))
		}
	}
	if o.lifetime != "" && o.expiresAt != "" {
		return nil, errors.New("--lifetime and --expires-at are mutually exclusive: give at most one")
	}
	if o.lifetime != "" {
		d, err := keyview.Lifetime(o.lifetime)
		if err != nil {
			return nil, fmt.Errorf("--lifetime: %w", err)
		}
		k.Spec.Lifetime = d
	}
	if o.expiresAt != "" {
		t, err := time.Parse(time.RFC3339, o.expiresAt)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, o.expiresAt); err != nil {
				return nil, fmt.Errorf("--expires-at %q is neither RFC 3339 (2027-01-31T00:00:00Z) nor a date (2027-01-31)", o.expiresAt)
			}
		}
		mt := metav1.NewTime(t)
		k.Spec.ExpiresAt = &mt
	}
	return k, nil
}

func (a *app) create(ctx context.Context, name string, opts createOptions) error {
	ns, explicit, err := a.namespace()
	if err != nil {
		return err
	}
	k, err := opts.manifest(ns, name)
	if err != nil {
		return err
	}
	// Said before anything is created: a key that expires before it is
	// issued is a slip.
	if v := policy.ExpiryInPast(k.Spec.ExpiresAt, a.now()); v != nil {
		return fmt.Errorf("--expires-at %s is in the past: give a later time, or --lifetime (such as 30d) instead", k.Spec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	switch opts.dryRun {
	case "client":
		if !explicit {
			k.Namespace = "" // as kubectl does: the manifest goes where it is applied
		}
		return a.printManifest(manifestOnly(k), opts.output)
	case "none", "":
		if opts.output != "" {
			return errors.New("-o prints the manifest of --dry-run=client; create prints only the key")
		}
	default:
		return fmt.Errorf("--dry-run must be none or client, not %q", opts.dryRun)
	}
	o, err := a.ops()
	if err != nil {
		return err
	}
	if err := o.Create(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(a.Err, "apikey %s/%s created; waiting for Keywarden to issue it\n", ns, name)

	issued, err := o.WaitIssued(ctx, k, opts.timeout)
	if err != nil {
		return err
	}
	raw, issued, err := o.IssuedKey(ctx, issued)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Err, "apikey %s/%s issued: prefix %s, owner %s, role %s, expires %s; the key is in Secret %s (field %s). It is printed once, now:\n",
		ns, name, issued.Status.KeyPrefix, keyview.Clean(issued.Status.Owner), issued.Status.Role, keyview.Expires(issued), issued.Status.SecretRef.Name, keywardenv1alpha1.SecretKeyField)
	if _, err := fmt.Fprintln(a.Out, raw); err != nil {
		return fmt.Errorf("writing the key to standard output: %w; it stays in Secret %s/%s", err, ns, issued.Status.SecretRef.Name)
	}
	return nil
}

// manifestOnly is the key as it goes into Git: no status, no fields the
// API server sets.
func manifestOnly(k *keywardenv1alpha1.APIKey) map[string]any {
	meta := map[string]any{"name": k.Name}
	if k.Namespace != "" {
		meta["namespace"] = k.Namespace
	}
	return map[string]any{"apiVersion": k.APIVersion, "kind": k.Kind, "metadata": meta, "spec": k.Spec}
}

func (a *app) printManifest(obj any, output string) error {
	b, err := json.MarshalIndent(obj, "", "    ")
	if err != nil {
		return err
	}
	// Text from the cluster with control characters stays escaped, in
	// JSON as in YAML (whose parser refuses them raw).
	b = []byte(escapeJSON(string(b)))
	switch output {
	case "", "yaml":
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		if escapeJSON(string(y)) != string(y) {
			// The YAML emitter writes some (such as bidi controls) as they
			// are: the escaped JSON is YAML too.
			y = append(b, '\n')
		}
		_, err = a.Out.Write(y)
		return err
	case "json":
		_, err = fmt.Fprintln(a.Out, string(b))
		return err
	}
	return fmt.Errorf("-o must be yaml or json, not %q", output)
}

// escapeJSON writes the characters keyview.Clean escapes as JSON \u
// escapes: the same document, safe on a terminal.
func escapeJSON(s string) string {
	if keyview.Clean(s) == s {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if keyview.Clean(string(r)) != string(r) && r != '\\' && r != '\n' {
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
				continue
			}
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
