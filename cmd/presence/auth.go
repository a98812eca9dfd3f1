package main

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/engine"
)

func newAuth() *cobra.Command {
	var contact string
	cmd := &cobra.Command{
		Use:   "auth NAME ROLE",
		Short: "Print the NATS permissions of a role, for a server of your own",
		Long: `Print, as a nats-server authorization user (JSON, which nats-server's
configuration accepts), the permissions the engine gives user NAME with ROLE:
user (with --contact, the contact it is), subscriber, auditor or operator; or,
with ROLE engine, what the engine's own user needs. With the embedded server,
presence serve --auth FILE sets them up by itself; with --nats, put them in
your server's configuration, in an account of the engine's. The user's clients
must use the inbox prefix _INBOX_<NAME> (presence clients do so by
themselves); the engine uses _INBOX.`,
		Args: exactArgs(2, "NAME and ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := struct {
				User        string          `json:"user"`
				Password    string          `json:"password"`
				Permissions permissionsJSON `json:"permissions"`
			}{User: args[0], Password: "CHANGE-ME"}
			var p *server.Permissions
			if args[1] == "engine" {
				if contact != "" {
					return usageError{fmt.Errorf("--contact %q: role engine has no contact; only role user has one", contact)}
				}
				p = engine.EnginePermissions()
			} else {
				u := engine.AuthUser{Name: args[0], Password: out.Password, Role: engine.Role(args[1]), Contact: contact}
				if err := (&engine.AuthConfig{Users: []engine.AuthUser{u}}).Validate(); err != nil {
					return usageError{err}
				}
				p = u.Permissions()
			}
			out.Permissions = permissionsJSON{Publish: p.Publish, Subscribe: p.Subscribe, AllowResponses: p.Response != nil}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false) // subjects end in ">"
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	cmd.Flags().StringVar(&contact, "contact", "", "the contact a user of role user is")
	return cmd
}

// permissionsJSON is a user's permissions as nats-server's configuration
// spells them.
type permissionsJSON struct {
	Publish        *server.SubjectPermission `json:"publish,omitempty"`
	Subscribe      *server.SubjectPermission `json:"subscribe,omitempty"`
	AllowResponses bool                      `json:"allow_responses,omitempty"`
}
