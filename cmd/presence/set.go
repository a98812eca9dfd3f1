package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

func newSet() *cobra.Command {
	var (
		f                      clientFlags
		name, requestID, cause string
		expectSeq              int64
	)
	cmd := &cobra.Command{
		Use:   "set CONTACT STATUS",
		Short: "Set a contact's status",
		Long: `Set a contact's status. STATUS is a name (away), a MISTATUS constant
(MISTATUS_AWAY) or a number (34 or 0x22). Setting the status the contact already
has changes nothing and says so.

Statuses: ` + statusList(),
		Example: `  presence set sip:alice@contoso.com away --name Alice
  presence set sip:alice@contoso.com MISTATUS_BUSY --request-id 7f3a
  presence set sip:alice@contoso.com idle --cause endpoint`,
		Args: exactArgs(2, "CONTACT and STATUS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			status, err := events.ParseStatus(args[1])
			if err != nil {
				return usageError{err}
			}
			c, err := events.ParseClientCause(cause)
			if err != nil {
				return usageError{err}
			}
			if err := events.ValidateContact(args[0]); err != nil {
				return usageError{err}
			}
			if err := status.Settable(c); err != nil {
				return usageError{err}
			}
			req := client.SetRequest{Contact: args[0], Status: status, Name: name, RequestID: requestID, Cause: c}
			if cmd.Flags().Changed("expect-seq") {
				if expectSeq < 0 {
					return usageError{fmt.Errorf("--expect-seq %d: want a log sequence, 0 or more", expectSeq)}
				}
				seq := uint64(expectSeq)
				req.ExpectSeq = &seq
			}
			client, nc, err := f.client("set")
			if err != nil {
				return err
			}
			defer nc.Close()
			res, err := client.Set(cmd.Context(), req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				return json.NewEncoder(out).Encode(res)
			}
			if res.Changed {
				fmt.Fprintf(out, "%s: %s -> %s (seq %d)\n", res.Contact, res.Previous, res.Status, res.Seq)
			} else {
				fmt.Fprintf(out, "%s: already %s, nothing changed (seq %d)\n", res.Contact, res.Status, res.Seq)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "friendly name (default: keep the current one)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: a retry with the same ID is answered as the first time")
	cmd.Flags().StringVar(&cause, "cause", "user", `who made the change: "user" or "endpoint" (idle needs "endpoint")`)
	cmd.Flags().Int64Var(&expectSeq, "expect-seq", 0, "fail unless the contact's last event is at this log sequence (0: never seen)")
	return cmd
}

// statusList names every status a client may set.
func statusList() string {
	var names []string
	for _, st := range events.SettableStatuses() {
		names = append(names, st.String())
	}
	return strings.Join(names, ", ")
}
