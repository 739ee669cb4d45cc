package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
)

type listOptions struct {
	allNamespaces             bool
	owner, role, class, phase string
	search                    string
	expiringWithin, unusedFor string
	output                    string
}

func (a *app) listCommand() *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List keys, newest first",
		Long: `List APIKeys newest first: name, prefix, display name, owner, role, created,
expires ("never" when it does not), last used ("Never" for a tracked key not
yet used, "untracked" when its use is not recorded) and status. The owner
and role are those the key is granted; before issuance, those it asks for.`,
		Example: `  kubectl keywarden list -A --expiring-within 7d
  kubectl keywarden list --unused-for 30d
  kubectl keywarden list --search wordpress -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.list(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list the keys of every namespace")
	f.StringVar(&o.owner, "owner", "", "only keys of this owner")
	f.StringVar(&o.role, "role", "", "only keys of this role")
	f.StringVar(&o.class, "class", "", "only keys of this APIKeyClass")
	f.StringVar(&o.phase, "phase", "", "only keys in this phase: Pending, Active, Refused, Expired or Revoked")
	f.StringVar(&o.search, "search", "", "only keys with this text in their name, display name, owner, prefix or description")
	f.StringVar(&o.expiringWithin, "expiring-within", "", "only active keys that expire within this time: 7d")
	f.StringVar(&o.unusedFor, "unused-for", "", "only active tracked keys not used for this time (never used: since issuance): 30d")
	f.StringVarP(&o.output, "output", "o", "", "wide (adds class, scopes and description), json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"wide", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("phase", cobra.FixedCompletions([]string{"Pending", "Active", "Refused", "Expired", "Revoked"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o listOptions) filter() (keyview.Filter, error) {
	f := keyview.Filter{Owner: o.owner, Role: o.role, Class: o.class, Search: o.search}
	var err error
	if o.phase != "" {
		if f.Phase, err = keyview.ParsePhase(o.phase); err != nil {
			return f, fmt.Errorf("--phase: %w", err)
		}
	}
	if o.expiringWithin != "" {
		if f.ExpiringWithin, err = keyview.ParseDuration(o.expiringWithin); err != nil {
			return f, fmt.Errorf("--expiring-within: %w", err)
		}
	}
	if o.unusedFor != "" {
		if f.UnusedFor, err = keyview.ParseDuration(o.unusedFor); err != nil {
			return f, fmt.Errorf("--unused-for: %w", err)
		}
	}
	return f, nil
}

func (a *app) list(ctx context.Context, o listOptions) error {
	filter, err := o.filter()
	if err != nil {
		return err
	}
	switch o.output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("-o must be wide, json or yaml, not %q", o.output)
	}
	ns, _, c, err := a.namespaceClient()
	if err != nil {
		return err
	}
	var list keywardenv1alpha1.APIKeyList
	var opts []client.ListOption
	where := ""
	if !o.allNamespaces {
		opts, where = append(opts, client.InNamespace(ns)), ns
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return keyops.Explain(err, "list", "apikeys.keywarden.dev", where)
	}
	shown := keyview.Select(list.Items, filter, a.now())
	switch o.output {
	case "json", "yaml":
		out := keywardenv1alpha1.APIKeyList{Items: shown}
		out.APIVersion, out.Kind = keywardenv1alpha1.GroupVersion.String(), "APIKeyList"
		for i := range out.Items {
			out.Items[i].ManagedFields = nil
			out.Items[i].APIVersion, out.Items[i].Kind = keywardenv1alpha1.GroupVersion.String(), keywardenv1alpha1.APIKeyKind
		}
		return a.printManifest(out, o.output)
	}
	if len(shown) == 0 {
		if where == "" {
			fmt.Fprintln(a.Err, "No keys found.")
		} else {
			fmt.Fprintf(a.Err, "No keys found in namespace %s.\n", where)
		}
		return nil
	}
	return keyview.Table(a.Out, shown, keyview.TableOptions{
		AllNamespaces: o.allNamespaces, Wide: o.output == "wide", Now: a.now(), Roles: keyops.Ops{Client: c}.RoleNames(ctx),
	})
}
