package main

import (
	"encoding/json"

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
user (with --contact, the contact it is), subscriber, auditor or operator. With
the embedded server, presence serve --auth FILE sets them up by itself; with
--nats, put them in your server's configuration. The user's clients must use
the inbox prefix _INBOX_<NAME> (presence clients do so by themselves).`,
		Args: exactArgs(2, "NAME and ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := engine.AuthUser{Name: args[0], Password: "CHANGE-ME", Role: engine.Role(args[1]), Contact: contact}
			if err := (&engine.AuthConfig{Users: []engine.AuthUser{u}}).Validate(); err != nil {
				return usageError{err}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false) // subjects end in ">"
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				User        string `json:"user"`
				Password    string `json:"password"`
				Permissions any    `json:"permissions"`
			}{u.Name, u.Password, u.Permissions()})
		},
	}
	cmd.Flags().StringVar(&contact, "contact", "", "the contact a user of role user is")
	return cmd
}
