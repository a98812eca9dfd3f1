package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/presence-engine/presence/engine"
)

func newAuth() *cobra.Command {
	var contact, account string
	cmd := &cobra.Command{
		Use:   "auth NAME ROLE",
		Short: "Print the NATS account of a user or of the engine, for a server of your own",
		Long: `Print, for the accounts block of a nats-server configuration, the
account of user NAME with ROLE: user (with --contact, the contact it is),
subscriber, auditor or operator. It holds the user, its permissions, and the
imports from the engine's account of what the role may use. With ROLE
engine, print the engine's account instead (named by --account): JetStream,
the engine's user NAME and its permissions, and what the roles import.

Each user needs an account of its own: within one account the server
delivers an answer, or a consumer's messages, wherever the requester names,
whoever may publish there. With the embedded server, presence serve --auth
FILE sets all this up by itself; with --nats, paste each into your server's
accounts { } block and change the passwords. The user's clients must use the
inbox prefix _INBOX_<NAME> (presence clients do so by themselves); the
engine uses _INBOX.`,
		Args: exactArgs(2, "NAME and ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			const password = "CHANGE-ME"
			if err := engine.ValidAccountName(account); err != nil {
				return usageError{fmt.Errorf("--account: %w", err)}
			}
			name, acc := args[0], engine.AccountConfig{}
			if args[1] == "engine" {
				if contact != "" {
					return usageError{fmt.Errorf("--contact %q: role engine has no contact; only role user has one", contact)}
				}
				name, acc = account, engine.EngineAccountConfig(args[0], password, engine.EnginePermissions())
			} else {
				if args[0] == account {
					return usageError{fmt.Errorf("NAME %q is the engine's account's (--account): a user's account is named after it, and two accounts of one name would be one", args[0])}
				}
				u := engine.AuthUser{Name: args[0], Password: password, Role: engine.Role(args[1]), Contact: contact}
				if err := (&engine.AuthConfig{Users: []engine.AuthUser{u}}).Validate(); err != nil {
					return usageError{err}
				}
				acc = u.Account(account)
			}
			data, err := engine.ConfigJSON(acc, "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%q: %s", name, data)
			return err
		},
	}
	cmd.Flags().StringVar(&contact, "contact", "", "the contact a user of role user is")
	cmd.Flags().StringVar(&account, "account", engine.EngineAccount, "the name of the engine's account")
	return cmd
}
