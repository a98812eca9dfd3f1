package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// The verbs of a contact's endpoints, preferred status and settings
// (docs/presence.md). Each prints the contact's status after the request.

// endpointVerb builds a command that sends one request, checked first, and
// prints its answer.
func endpointVerb(f *clientFlags, cmd *cobra.Command, build func(args []string) (client.EndpointRequest, error),
	send func(context.Context, *client.Client, client.EndpointRequest) (client.EndpointResult, error)) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := build(args)
		if err != nil {
			return usageError{err}
		}
		if err := req.Validate(); err != nil {
			return usageError{err}
		}
		c, nc, err := f.client(cmd.Name())
		if err != nil {
			return err
		}
		defer nc.Close()
		res, err := send(cmd.Context(), c, req)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if f.json {
			return json.NewEncoder(out).Encode(res)
		}
		line := fmt.Sprintf("%s: %s -> %s (seq %d)", res.Contact, res.Previous, res.Status, res.Seq)
		if res.Previous == res.Status {
			line = fmt.Sprintf("%s: %s (seq %d)", res.Contact, res.Status, res.Seq)
		}
		if !res.Expires.IsZero() {
			line += fmt.Sprintf("; %s's lease ends %s", res.Endpoint, res.Expires.Format(time.RFC3339))
		}
		fmt.Fprintln(out, line)
		return nil
	}
	f.add(cmd)
	return cmd
}

func newSignIn() *cobra.Command {
	var (
		f            clientFlags
		kind, status string
		lease        time.Duration
	)
	cmd := endpointVerb(&f, &cobra.Command{
		Use:   "signin CONTACT ENDPOINT",
		Short: "Sign an endpoint of a contact in",
		Long: `Sign an endpoint of a contact in, with a lease it keeps by heartbeats. The
contact's status is then decided from its endpoints (docs/presence.md).`,
		Example: `  presence signin sip:alice@contoso.com desk-1 --kind desktop
  presence signin sip:alice@contoso.com phone --kind mobile --status busy --lease 5m`,
		Args: exactArgs(2, "CONTACT and ENDPOINT"),
	}, func(args []string) (client.EndpointRequest, error) {
		req := client.EndpointRequest{Contact: args[0], Op: client.OpSignIn, Endpoint: args[1], Kind: events.EndpointKind(kind), Lease: lease}
		if status != "" {
			st, err := events.ParseStatus(status)
			if err != nil {
				return req, err
			}
			req.Status = st
		}
		return req, nil
	}, func(ctx context.Context, c *client.Client, req client.EndpointRequest) (client.EndpointResult, error) {
		return c.SignIn(ctx, req)
	})
	cmd.Flags().StringVar(&kind, "kind", "desktop", "what the endpoint is: desktop, mobile, web, phone, calendar or bot")
	cmd.Flags().DurationVar(&lease, "lease", client.DefaultLease, "how long it lives without a heartbeat (5s to 4h)")
	cmd.Flags().StringVar(&status, "status", "", "the status the user chose on it (default: none)")
	return cmd
}

func newHeartbeat() *cobra.Command {
	var f clientFlags
	return endpointVerb(&f, &cobra.Command{
		Use:     "heartbeat CONTACT ENDPOINT",
		Short:   "Keep an endpoint's lease",
		Example: `  presence heartbeat sip:alice@contoso.com desk-1`,
		Args:    exactArgs(2, "CONTACT and ENDPOINT"),
	}, func(args []string) (client.EndpointRequest, error) {
		return client.EndpointRequest{Contact: args[0], Op: client.OpHeartbeat, Endpoint: args[1]}, nil
	}, func(ctx context.Context, c *client.Client, req client.EndpointRequest) (client.EndpointResult, error) {
		return c.Heartbeat(ctx, req.Contact, req.Endpoint)
	})
}

func newSignOut() *cobra.Command {
	var f clientFlags
	return endpointVerb(&f, &cobra.Command{
		Use:     "signout CONTACT ENDPOINT",
		Short:   "Sign an endpoint of a contact out",
		Example: `  presence signout sip:alice@contoso.com desk-1`,
		Args:    exactArgs(2, "CONTACT and ENDPOINT"),
	}, func(args []string) (client.EndpointRequest, error) {
		return client.EndpointRequest{Contact: args[0], Op: client.OpSignOut, Endpoint: args[1]}, nil
	}, func(ctx context.Context, c *client.Client, req client.EndpointRequest) (client.EndpointResult, error) {
		return c.SignOut(ctx, req.Contact, req.Endpoint)
	})
}

func newPrefer() *cobra.Command {
	var (
		f      clientFlags
		forDur time.Duration
	)
	cmd := endpointVerb(&f, &cobra.Command{
		Use:   "prefer CONTACT STATUS|none",
		Short: "Set the status a contact prefers for every endpoint",
		Long: `Set the status a contact prefers for every endpoint, for a while or until
cleared ("none"). It holds while an endpoint is signed in.`,
		Example: `  presence prefer sip:alice@contoso.com do-not-disturb --for 1h
  presence prefer sip:alice@contoso.com none`,
		Args: exactArgs(2, "CONTACT and STATUS (or none)"),
	}, func(args []string) (client.EndpointRequest, error) {
		req := client.EndpointRequest{Contact: args[0], Op: client.OpPrefer}
		if args[1] != "none" {
			st, err := events.ParseStatus(args[1])
			if err != nil {
				return req, err
			}
			req.Preferred.Status = st
		}
		if forDur < 0 {
			return req, fmt.Errorf("--for %s: want a positive duration", forDur)
		}
		if forDur > 0 {
			req.Preferred.Until = time.Now().Add(forDur)
		}
		return req, nil
	}, func(ctx context.Context, c *client.Client, req client.EndpointRequest) (client.EndpointResult, error) {
		return c.Prefer(ctx, req.Contact, req.Preferred.Status, req.Preferred.Until)
	})
	cmd.Flags().DurationVar(&forDur, "for", 0, "how long it holds (default: until cleared)")
	return cmd
}

func newSettings() *cobra.Command {
	var (
		f               clientFlags
		transmit        bool
		idle, awayAfter time.Duration
	)
	cmd := endpointVerb(&f, &cobra.Command{
		Use:   "settings CONTACT",
		Short: "Set whether a contact transmits idle, and when idle and away come",
		Example: `  presence settings sip:alice@contoso.com --transmit-idle=false
  presence settings sip:alice@contoso.com --idle-after 10m --away-after 30m`,
		Args: exactArgs(1, "CONTACT"),
	}, func(args []string) (client.EndpointRequest, error) {
		return client.EndpointRequest{Contact: args[0], Op: client.OpSettings,
			Settings: events.Settings{TransmitIdle: transmit, IdleAfter: idle, AwayAfter: awayAfter}}, nil
	}, func(ctx context.Context, c *client.Client, req client.EndpointRequest) (client.EndpointResult, error) {
		return c.SetSettings(ctx, req.Contact, req.Settings)
	})
	cmd.Flags().BoolVar(&transmit, "transmit-idle", true, "become idle, then away, without input")
	cmd.Flags().DurationVar(&idle, "idle-after", events.DefaultIdleAfter, "idle after this long without input (1m or more)")
	cmd.Flags().DurationVar(&awayAfter, "away-after", events.DefaultAwayAfter, "away after this long without input (no sooner than idle, within a day)")
	return cmd
}
