package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

func newStatus() *cobra.Command {
	return newRead("status", "Show a contact's status as everyone else sees it",
		`Show a contact's status as everyone else sees it: invisible reads offline.
A never-seen contact reads unknown. With --min-seq the answer comes from a
projection that has applied the log at least that far (read-your-writes: pass
the seq a set returned).`,
		func(c *engine.Client) func(cmd *cobra.Command, contact string, minSeq uint64) (engine.Reply, error) {
			return func(cmd *cobra.Command, contact string, minSeq uint64) (engine.Reply, error) {
				return c.Status(cmd.Context(), contact, minSeq)
			}
		})
}

func newSelf() *cobra.Command {
	return newRead("self", "Show a contact's own status, invisible included",
		`Show a contact's own status, invisible included (what Communicator calls
MyStatus). Permissions should let only the contact itself read it.`,
		func(c *engine.Client) func(cmd *cobra.Command, contact string, minSeq uint64) (engine.Reply, error) {
			return func(cmd *cobra.Command, contact string, minSeq uint64) (engine.Reply, error) {
				return c.Self(cmd.Context(), contact, minSeq)
			}
		})
}

func newRead(name, short, long string, read func(*engine.Client) func(*cobra.Command, string, uint64) (engine.Reply, error)) *cobra.Command {
	var (
		f      clientFlags
		minSeq int64
	)
	cmd := &cobra.Command{
		Use:   name + " CONTACT",
		Short: short,
		Long:  long,
		Args:  exactArgs(1, "one CONTACT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if minSeq < 0 {
				return usageError{fmt.Errorf("--min-seq %d: want a log sequence, 0 or more", minSeq)}
			}
			if err := events.ValidateContact(args[0]); err != nil {
				return usageError{err}
			}
			c, nc, err := f.client(name)
			if err != nil {
				return err
			}
			defer nc.Close()
			r, err := read(c)(cmd, args[0], uint64(minSeq))
			if err != nil {
				return err
			}
			return printReply(cmd.OutOrStdout(), r, f.json)
		},
	}
	f.add(cmd)
	cmd.Flags().Int64Var(&minSeq, "min-seq", 0, "answer from a projection that has applied the log at least this far")
	return cmd
}

func printReply(out io.Writer, r engine.Reply, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	who := r.Contact
	if r.Name != "" {
		who = r.Name + " <" + r.Contact + ">"
	}
	_, err := fmt.Fprintf(out, "%s: %s (0x%04X, seq %d)\n", who, r.Status, r.Status.Code(), r.Seq)
	return err
}
