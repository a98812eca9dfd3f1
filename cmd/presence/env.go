package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// The environment, as containers configure a service: every flag of serve can
// come from a variable, --flag-name from PRESENCE_FLAG_NAME. A flag given on
// the command line wins over its variable.

// envPrefix begins the name of every variable serve reads.
const envPrefix = "PRESENCE_"

// envName is the variable a flag may come from.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// documentEnv adds to each flag's usage the variable it may come from, for
// --help.
func documentEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) { f.Usage += " [$" + envName(f.Name) + "]" })
}

// flagsFromEnv sets each flag of fs not given on the command line from its
// variable, when lookup finds one that is not empty. A value the flag does not take is a usage
// error that names the variable.
func flagsFromEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok || v == "" { // empty is unset, as a template leaves it
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usageError{fmt.Errorf("$%s %q: %w", name, v, serr)}
		}
	})
	return err
}
