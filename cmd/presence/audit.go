package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/audit"
	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/engine"
	"github.com/presence-engine/presence/events"
	"github.com/presence-engine/presence/projections"
)

// timeForms says what a TIME may be.
const timeForms = `RFC 3339 ("2026-11-24T10:00:00Z", "2026-11-24T10:00:00.5+01:00"), ` +
	`a date ("2026-11-24", midnight UTC), "now", or a duration before now ("90m", "-24h", "2h ago")`

// parseTime reads a TIME given to flag: every command that takes a time reads
// it the same way.
func parseTime(flag, value string, now time.Time) (time.Time, error) {
	v := strings.TrimSpace(value)
	if v == "now" {
		return now, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	// A duration is before now, whichever way it is written.
	ago := v
	if before, ok := strings.CutSuffix(v, " ago"); ok {
		ago = strings.TrimSpace(before)
	}
	ago = strings.TrimPrefix(ago, "-")
	if d, err := time.ParseDuration(ago); err == nil && d >= 0 && ago != "" && ago[0] != '+' {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Errorf("%s %q is not a time: want %s", flag, value, timeForms)}
}

// seqFlag checks a log sequence given to flag.
func seqFlag(flag string, v int64) (uint64, error) {
	if v < 0 {
		return 0, usageError{fmt.Errorf("%s %d: want a log sequence, 1 or more (0: no bound)", flag, v)}
	}
	return uint64(v), nil
}

// logReader connects and returns the log for audit.
func (f *clientFlags) log(name string) (*audit.Log, *nats.Conn, error) {
	nc, err := f.connect(name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	// Look at the log first, within --timeout: a user who may not read it is
	// told so at once.
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if _, err := js.Stream(ctx, events.LogStream); err != nil {
		defer nc.Close()
		if le := nc.LastError(); errors.Is(le, nats.ErrPermissionViolation) {
			return nil, nil, &client.KindError{Kind: client.ErrForbidden, Err: fmt.Errorf("the server refused to show this user the log %s (%v); the log is for auditors",
				events.LogStream, le)}
		}
		return nil, nil, fmt.Errorf("open the log %s at %s: %w", events.LogStream, f.server, err)
	}
	return audit.NewLog(js, events.LogStream), nc, nil
}

func newReplay() *cobra.Command {
	var (
		f              clientFlags
		contacts       []string
		fromSeq, toSeq int64
		since, until   string
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Print the log in order: every event, invisible included",
		Long: `Print the log in order, one line per event: sequence, time, contact, friendly
name, previous -> new status, and cause. This is the privileged view: invisible
shows as invisible. --json prints one object per line.

--contact (repeatable) reads only those contacts' subjects. Bounds are inclusive;
times are the events' own and may be ` + timeForms + `.
The replay ends at the log's end as it was when it started, and stops quietly
when its output is closed (| head).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			q := audit.Query{Contacts: contacts}
			var err error
			if q.FromSeq, err = seqFlag("--from-seq", fromSeq); err != nil {
				return err
			}
			if q.ToSeq, err = seqFlag("--to-seq", toSeq); err != nil {
				return err
			}
			if cmd.Flags().Changed("since") {
				if fromSeq != 0 {
					return usageError{errors.New("--from-seq and --since: give one of them")}
				}
				if q.Since, err = parseTime("--since", since, now); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("until") {
				if toSeq != 0 {
					return usageError{errors.New("--to-seq and --until: give one of them")}
				}
				if q.Until, err = parseTime("--until", until, now); err != nil {
					return err
				}
			}
			if err := q.Validate(); err != nil {
				return usageError{err}
			}
			log, nc, err := f.log("replay")
			if err != nil {
				return err
			}
			defer nc.Close()
			bar := newProgressBar(cmd.ErrOrStderr(), "replay", !f.json && !isTerminal(cmd.OutOrStdout()))
			q.Progress = bar.update
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			var line []byte
			_, err = log.Replay(cmd.Context(), q, func(e audit.Entry) error {
				if f.json {
					line = e.AppendJSON(line[:0])
				} else {
					line = e.AppendText(line[:0])
				}
				_, err := out.Write(line)
				return err
			})
			bar.done()
			if err == nil {
				err = out.Flush()
			}
			if errors.Is(err, syscall.EPIPE) {
				return nil // the reader has seen enough
			}
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVar(&contacts, "contact", nil, "only this contact (repeatable)")
	cmd.Flags().Int64Var(&fromSeq, "from-seq", 0, "from this log sequence")
	cmd.Flags().Int64Var(&toSeq, "to-seq", 0, "up to this log sequence")
	cmd.Flags().StringVar(&since, "since", "", "events at or after this time")
	cmd.Flags().StringVar(&until, "until", "", "events at or before this time")
	return cmd
}

// atFlags are --at and --at-seq of status and self.
type atFlags struct {
	at    string
	atSeq int64
}

func (a *atFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.at, "at", "", "as of this time, from the log (TIME: "+timeForms+")")
	cmd.Flags().Int64Var(&a.atSeq, "at-seq", 0, "as of this log sequence, from the log")
}

// point returns the point asked for in cmd's flags, and whether one was.
func (a *atFlags) point(cmd *cobra.Command) (audit.Point, bool, error) {
	atGiven, seqGiven := cmd.Flags().Changed("at"), cmd.Flags().Changed("at-seq")
	if atGiven && seqGiven {
		return audit.Point{}, false, usageError{errors.New("--at and --at-seq: give one of them")}
	}
	if atGiven {
		t, err := parseTime("--at", a.at, time.Now())
		return audit.Point{Time: t}, true, err
	}
	if seqGiven {
		if a.atSeq < 1 {
			return audit.Point{}, false, usageError{fmt.Errorf("--at-seq %d: want a log sequence, 1 or more", a.atSeq)}
		}
		return audit.Point{Seq: uint64(a.atSeq)}, true, nil
	}
	return audit.Point{}, false, nil
}

// readAt answers status or self --at from the log.
func readAt(cmd *cobra.Command, f *clientFlags, contact string, at audit.Point, self bool) error {
	log, nc, err := f.log("status")
	if err != nil {
		return err
	}
	defer nc.Close()
	st, _, err := log.At(cmd.Context(), contact, at)
	if err != nil {
		return err
	}
	r := client.Reply{Contact: contact, Name: st.Visible.Name, Status: st.Visible.Status, Seq: st.Visible.Seq}
	if self {
		r = client.Reply{Contact: contact, Name: st.Name, Status: st.Status, Seq: st.Seq}
	}
	return printReply(cmd.OutOrStdout(), r, f.json)
}

func newReport() *cobra.Command {
	var (
		f            clientFlags
		since, until string
	)
	cmd := &cobra.Command{
		Use:   "report CONTACT",
		Short: "Show how a contact spent a window of time, status by status",
		Long: `Show, from the log, the time a contact spent in each status (its true status,
invisible included) between --since and --until, how many changes it made then,
and when it was last seen online (in a status other than offline, invisible or
unknown). It also shows how many of the changes each cause made (user,
endpoint, expiry, engine) and how many the flap window held back, and for each
endpoint signed in then or named by an event then: its kind, its sign-ins,
sign-outs, expiries and changes, and whether it was signed in at the end.

--until defaults to now, --since to 24 hours before --until; a window that
starts after now is refused (the log cannot say yet how it is spent).
TIME is ` + timeForms + `.`,
		Args: exactArgs(1, "one CONTACT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := events.ValidateContact(args[0]); err != nil {
				return usageError{err}
			}
			now := time.Now().UTC()
			end, err := now, error(nil)
			if cmd.Flags().Changed("until") {
				if end, err = parseTime("--until", until, now); err != nil {
					return err
				}
			}
			start := end.Add(-24 * time.Hour)
			if cmd.Flags().Changed("since") {
				if start, err = parseTime("--since", since, now); err != nil {
					return err
				}
			}
			if !start.Before(end) {
				return usageError{fmt.Errorf("--since %s is not before --until %s", start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))}
			}
			log, nc, err := f.log("report")
			if err != nil {
				return err
			}
			defer nc.Close()
			r, err := log.Report(cmd.Context(), args[0], start, end)
			if err != nil {
				return err
			}
			return printReport(cmd.OutOrStdout(), r, f.json)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&since, "since", "", "start of the window (default 24h before --until)")
	cmd.Flags().StringVar(&until, "until", "", "end of the window (default now)")
	return cmd
}

func printReport(out io.Writer, r audit.Report, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "%s from %s to %s (%s): %s\n", contactText(r.Contact, r.Name),
		r.Since.Format(time.RFC3339Nano), r.Until.Format(time.RFC3339Nano), r.Until.Sub(r.Since), count(r.Changes, "change", "changes"))
	for _, s := range r.Statuses {
		fmt.Fprintf(w, "  %-24s %14s  %5.1f%%\n", s.Status, s.Duration.Round(time.Millisecond), 100*s.Share)
	}
	fmt.Fprintf(w, "  at the start: %s; at the end: %s\n", r.Start, r.End)
	switch {
	case r.OnlineAtEnd:
		fmt.Fprintf(w, "  last seen online: online at the end of the window\n")
	case r.LastOnline.IsZero():
		fmt.Fprintf(w, "  last seen online: never\n")
	default:
		fmt.Fprintf(w, "  last seen online: %s\n", r.LastOnline.Format(time.RFC3339Nano))
	}
	if len(r.Causes) > 0 {
		causes := make([]string, len(r.Causes))
		for i, c := range r.Causes {
			causes[i] = fmt.Sprintf("%s %d", c.Cause, c.Changes)
		}
		fmt.Fprintf(w, "  changes by cause: %s", strings.Join(causes, ", "))
		if r.Held > 0 {
			fmt.Fprintf(w, "; %d held back by the flap window", r.Held)
		}
		fmt.Fprintln(w)
	}
	for _, ep := range r.Endpoints {
		kind := ""
		if ep.Kind != "" {
			kind = " (" + string(ep.Kind) + ")"
		}
		end := "not signed in at the end"
		if ep.SignedInAtEnd {
			end = "signed in at the end"
		}
		fmt.Fprintf(w, "  endpoint %q%s: %s, %s, %s, %s; %s\n", ep.ID, kind, count(ep.SignIns, "sign-in", "sign-ins"),
			count(ep.SignOuts, "sign-out", "sign-outs"), count(ep.Expiries, "expiry", "expiries"), count(ep.Changes, "change", "changes"), end)
	}
	return w.Flush()
}

func newVerify() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the engine's projection and feed against the log",
		Long: `Ask the engine to fold the whole log afresh and compare it with its live
projection (every contact's state and the checkpoint), to check every contact's
chain (each event's previous is the status before it), and to check the feed
against the log (every visible change once, in order, none for hidden ones).
It prints what it checked and the projection's digest, and each difference
(contact, sequence, expected, found); it exits 1 on any difference.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, nc, err := f.client("verify")
			if err != nil {
				return err
			}
			defer nc.Close()
			bar := newProgressBar(cmd.ErrOrStderr(), "verify", !f.json)
			r, err := engine.NewAdminClient(c).Verify(cmd.Context(), bar.update)
			bar.done()
			if errors.Is(err, client.ErrForbidden) {
				// Said as the log's refusal is, without the engine's prefix.
				return &client.KindError{Kind: client.ErrForbidden, Err: fmt.Errorf("the server refused this user the request %s (%v); verify is for auditors and operators",
					events.VerifySubject, nc.LastError())}
			}
			if err != nil {
				return err
			}
			if err := printVerify(cmd.OutOrStdout(), r, f.json); err != nil {
				return err
			}
			if !r.OK() {
				return fmt.Errorf("verify found %s", count(r.Count, "difference", "differences"))
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func printVerify(out io.Writer, r *audit.VerifyReport, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "checked the log up to seq %d: %s (%s), %s, %s for %s\n", r.Seq,
		count(r.Events, "event", "events"), count(r.Malformed, "not an event", "not events"), count(r.Contacts, "contact", "contacts"),
		count(r.FeedEntries, "feed entry", "feed entries"), count(r.Changes, "visible change", "visible changes"))
	fmt.Fprintf(w, "projection digest: %s\n", digestText(r.Digest))
	if r.OK() {
		fmt.Fprintf(w, "ok: the projection equals a fresh fold of the log, every chain holds, and the feed has every visible change once, in order, and nothing else\n")
		return w.Flush()
	}
	if r.Fresh != r.Digest {
		fmt.Fprintf(w, "fresh fold digest: %s\n", digestText(r.Fresh))
	}
	fmt.Fprintf(w, "%s:\n", count(r.Count, "difference", "differences"))
	for _, d := range r.Differences {
		fmt.Fprintf(w, "  %s\n", d)
	}
	if n := r.Count - uint64(len(r.Differences)); n > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", n)
	}
	return w.Flush()
}

func newRebuild() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the engine's projection from the log, without stopping it",
		Long: `Ask the engine to fold the whole log afresh into a new projection while it goes
on answering from the old one, and to switch to the new one once it has caught
up. It prints the sequence the switch was made at and the new digest.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, nc, err := f.client("rebuild")
			if err != nil {
				return err
			}
			defer nc.Close()
			bar := newProgressBar(cmd.ErrOrStderr(), "rebuild", !f.json)
			r, err := engine.NewAdminClient(c).Rebuild(cmd.Context(), bar.update)
			bar.done()
			if err != nil {
				return err
			}
			if f.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "rebuilt: switched at seq %d\nprojection digest: %s\n", r.Seq, digestText(r.Digest))
			return err
		},
	}
	f.add(cmd)
	return cmd
}

// printDigest prints the answer of status --digest.
func printDigest(out io.Writer, d projections.Digest, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(d)
	}
	_, err := fmt.Fprintf(out, "projection digest: %s\n", digestText(d))
	return err
}
