package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

func newWatch() *cobra.Command {
	var (
		f              clientFlags
		fromSeq        int64
		since, durable string
		all            bool
	)
	cmd := &cobra.Command{
		Use:   "watch [CONTACT ...]",
		Short: "Follow status changes as subscribers see them",
		Long: `Follow the feed of visible status changes (all contacts, or those named) and
print, for each, the friendly name, the previous status and the current status,
read from the projection at least as new as the change. Invisible never shows:
it reads offline, and a change between offline and invisible is not a change.
Each change's seq is its feed position: it counts visible changes only.

By default only changes from now on are shown; --all, --from-seq or --since
start earlier. --durable NAME keeps the position on the server, so a later watch
with the same name resumes where this one stopped.`,
		Example: `  presence watch
  presence watch sip:alice@contoso.com --since 1h
  presence watch --json --durable audit-mirror`,
		RunE: func(cmd *cobra.Command, args []string) error {
			start := client.StartNew()
			set := 0
			if all {
				start, set = client.StartAll(), set+1
			}
			if cmd.Flags().Changed("from-seq") {
				if fromSeq < 1 {
					return usageError{fmt.Errorf("--from-seq %d: want a feed position, 1 or more", fromSeq)}
				}
				start, set = client.StartAtSeq(uint64(fromSeq)), set+1
			}
			if cmd.Flags().Changed("since") {
				t, err := parseTime("--since", since, time.Now())
				if err != nil {
					return err
				}
				start, set = client.StartAtTime(t), set+1
			}
			if set > 1 {
				return usageError{fmt.Errorf("--all, --from-seq and --since choose where to start: give one")}
			}
			c, nc, err := f.client("watch")
			if err != nil {
				return err
			}
			defer nc.Close()
			sub, err := client.NewSubscriber(client.SubscriberConfig{
				Conn: nc, Reader: c, Durable: durable, Start: start, Contacts: args,
			})
			if err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			return sub.Run(cmd.Context(), func(ctx context.Context, ch client.Change) error {
				cur, err := ch.Current(ctx)
				if err != nil {
					return err
				}
				return printChange(out, ch, cur, f.json)
			})
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "start with the first change the feed holds")
	cmd.Flags().Int64Var(&fromSeq, "from-seq", 0, "start with the change at this feed position (a seq watch or status shows), or the first after it")
	cmd.Flags().StringVar(&since, "since", "", "start with changes stored since a time: "+timeForms)
	cmd.Flags().StringVar(&durable, "durable", "", "name a durable subscription that resumes where it stopped")
	return cmd
}

type changeJSON struct {
	Contact  string        `json:"contact"`
	Name     string        `json:"name"`
	Previous events.Status `json:"previous"`
	Status   events.Status `json:"status"`
	Code     int           `json:"code"`
	Seq      uint64        `json:"seq"`
	At       time.Time     `json:"at"`
}

// printChange prints one change in the spirit of OnContactStatusChange's example:
// the friendly name, the old status and the new one read now.
func printChange(out io.Writer, ch client.Change, cur client.Reply, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(changeJSON{Contact: ch.Contact, Name: cur.Name, Previous: ch.Previous,
			Status: cur.Status, Code: cur.Status.Code(), Seq: ch.Seq, At: ch.At})
	}
	// Like the seed's handler, the friendly name as it is now.
	_, err := fmt.Fprintf(out, "%s  %s: Status Changed EVENT: Old Status-%s New Status:%s  (seq %d)\n",
		ch.At.Format(time.RFC3339), contactText(ch.Contact, cur.Name), ch.Previous, cur.Status, ch.Seq)
	return err
}
