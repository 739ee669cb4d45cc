package cli

import (
	"context"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyview"
)

// maxEvents is how many of a key's events show prints, newest last.
const maxEvents = 10

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key: its grant, expiry, use, Secret, conditions and events",
		Long: `Show an APIKey: the grant (owner, role, and scopes with their class's
descriptions), expiry, last use, the Secret, its conditions in words and its
recent events. It never shows the key.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeOneName,
		RunE:              func(cmd *cobra.Command, args []string) error { return a.show(cmd.Context(), args[0]) },
	}
}

func (a *app) completeOneName(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, args, prefix)
}

func (a *app) show(ctx context.Context, name string) error {
	k, err := a.named(ctx, name)
	if err != nil {
		return err
	}
	ns := k.Namespace
	c, _ := a.client()
	d := keyview.Details{Key: k}
	if class := keyview.Class(k); class != "" {
		var cl keywardenv1alpha1.APIKeyClass
		// The descriptions are a help, not a need: a person who may not
		// read classes still sees the key.
		if err := c.Get(ctx, client.ObjectKey{Name: class}, &cl); err == nil {
			d.Class = &cl
		}
	}
	var events corev1.EventList
	err = c.List(ctx, &events, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: fields.SelectorFromSet(fields.Set{
		"involvedObject.kind": keywardenv1alpha1.APIKeyKind, "involvedObject.name": name, "involvedObject.uid": string(k.UID),
	})})
	switch {
	case apierrors.IsForbidden(err):
		d.EventsNote = "you may not list events in namespace " + ns
	case err != nil:
		d.EventsNote = "the events could not be read: " + err.Error()
	default:
		d.Events = keyview.RecentEvents(events.Items, maxEvents)
	}
	return keyview.Show(a.Out, d, a.now())
}
