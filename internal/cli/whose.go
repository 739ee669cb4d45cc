package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/keyview"
)

func (a *app) whoseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whose",
		Short: "Say which APIKey holds a key read from standard input",
		Long: `Read a key from standard input (a leaked one, say), hash it here, and look
the hash up in the APIKeys' status: it prints the namespace, name, owner and
phase of the APIKey that holds it, and whether it is its current key, the
next one or one rotated out. The key is neither sent anywhere nor printed.
It searches every namespace you may list APIKeys in, or only --namespace.`,
		Example: `  pbpaste | kubectl keywarden whose
  kubectl keywarden whose < leaked.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.whose(cmd.Context()) },
	}
}

func (a *app) whose(ctx context.Context) error {
	var b []byte
	var err error
	if f, ok := a.In.(*os.File); ok && a.terminal {
		// At a terminal: ask, and read without echo, so that the key
		// stays out of the terminal's scrollback.
		fmt.Fprint(a.Err, "Paste the key (it is not shown), then press Enter: ")
		b, err = term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Err)
	} else {
		b, err = io.ReadAll(io.LimitReader(a.In, 4096))
	}
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	raw := strings.TrimSpace(string(b))
	if raw == "" {
		return errors.New("no key on standard input: pipe the key in (kubectl keywarden whose < file)")
	}
	// Only the verdict is told: the error of Check names no part of the key.
	if err := keys.Check([]byte(raw)); err != nil {
		return errors.New("standard input is not a Keywarden key (one key, on one line, as its Secret holds it)")
	}
	hash := keys.Hash(raw)
	ns, explicit, c, err := a.namespaceClient()
	if err != nil {
		return err
	}
	var list keywardenv1alpha1.APIKeyList
	searched := "every namespace"
	if explicit {
		err, searched = c.List(ctx, &list, client.InNamespace(ns)), "namespace "+ns
	} else if err = c.List(ctx, &list); apierrors.IsForbidden(err) {
		fmt.Fprintf(a.Err, "You may not list APIKeys across namespaces; searching namespace %s only.\n", ns)
		err, searched = c.List(ctx, &list, client.InNamespace(ns)), "namespace "+ns
	}
	if err != nil {
		return keyops.Explain(err, "list", "apikeys.keywarden.dev", strings.TrimPrefix(searched, "namespace "))
	}
	tw := tabwriter.NewWriter(a.Out, 0, 8, 3, ' ', 0)
	found := false
	for i := range list.Items {
		k := &list.Items[i]
		which := keyops.Holds(k, hash, a.now())
		if which == "" {
			continue
		}
		if !found {
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tOWNER\tROLE\tSTATUS\tKEY")
			found = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Namespace, k.Name, keyview.Clean(k.GrantedOwner()), keyview.Clean(k.GrantedRole()), keyview.Status(k), which)
	}
	if !found {
		fmt.Fprintf(a.Err, "No APIKey in %s holds this key.\n", searched)
		return exitCode(1)
	}
	return tw.Flush()
}
