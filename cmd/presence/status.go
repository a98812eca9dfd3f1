package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
)

func newStatus() *cobra.Command {
	return newRead("status", "Show a contact's status as everyone else sees it",
		`Show a contact's status as everyone else sees it: invisible reads offline.
A never-seen contact reads unknown. Its seq is a feed position: the number of
visible changes up to the contact's last one, as presence watch shows them.
With --min-seq (a feed position) the answer comes from a projection that has
applied the feed at least that far: a watcher handling a change passes its seq.
With --at or --at-seq it is the status the contact had then, read from the log. With --digest (and no CONTACT) it prints the digest of
the engine's whole projection instead, to compare replicas in one line.`,
		false)
}

func newSelf() *cobra.Command {
	return newRead("self", "Show a contact's own status, invisible included",
		`Show a contact's own status, invisible included (what Communicator calls
MyStatus). Permissions should let only the contact itself read it. Its seq is
the log sequence of the contact's last event, as set prints it. With --min-seq
(a log sequence) the answer comes from a projection that has applied the log
at least that far (read-your-writes: pass the seq a set returned). With --at
or --at-seq it is the status the contact had then, read from the log.`,
		true)
}

func newRead(name, short, long string, self bool) *cobra.Command {
	var (
		f      clientFlags
		at     atFlags
		minSeq int64
		digest bool
	)
	use := name + " CONTACT"
	position := "a log sequence" // what --min-seq is
	if !self {
		use = name + " CONTACT | " + name + " --digest"
		position = "a feed position"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args: func(cmd *cobra.Command, args []string) error {
			if digest {
				return exactArgs(0, "no CONTACT with --digest")(cmd, args)
			}
			return exactArgs(1, "one CONTACT")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if minSeq < 0 {
				return usageError{fmt.Errorf("--min-seq %d: want %s, 0 or more", minSeq, position)}
			}
			point, past, err := at.point(cmd)
			if err != nil {
				return err
			}
			if digest {
				if past || minSeq != 0 {
					return usageError{errors.New("--digest takes no --at, --at-seq or --min-seq")}
				}
				c, nc, err := f.client(name)
				if err != nil {
					return err
				}
				defer nc.Close()
				d, err := engine.NewAdminClient(c).Digest(cmd.Context())
				if err != nil {
					return err
				}
				return printDigest(cmd.OutOrStdout(), d, f.json)
			}
			if err := events.ValidateContact(args[0]); err != nil {
				return usageError{err}
			}
			if past {
				if minSeq != 0 {
					return usageError{errors.New("--min-seq does not go with --at or --at-seq")}
				}
				return readAt(cmd, &f, args[0], point, self)
			}
			c, nc, err := f.client(name)
			if err != nil {
				return err
			}
			defer nc.Close()
			read := c.Status
			if self {
				read = c.Self
			}
			r, err := read(cmd.Context(), args[0], uint64(minSeq))
			if err != nil {
				return err
			}
			return printReply(cmd.OutOrStdout(), r, f.json)
		},
	}
	f.add(cmd)
	at.add(cmd)
	cmd.Flags().Int64Var(&minSeq, "min-seq", 0, "answer from a projection that has applied at least this far ("+position+")")
	if !self {
		cmd.Flags().BoolVar(&digest, "digest", false, "print the digest of the engine's projection")
	}
	return cmd
}

func printReply(out io.Writer, r client.Reply, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	lastActive := ""
	if !r.LastActive.IsZero() {
		lastActive = ", last active " + r.LastActive.UTC().Format(time.RFC3339)
	}
	_, err := fmt.Fprintf(out, "%s: %s (0x%04X, seq %d%s)\n", contactText(r.Contact, r.Name), r.Status, r.Status.Code(), r.Seq, lastActive)
	return err
}
