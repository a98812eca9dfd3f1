package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/presence-engine/presence/client"
	"github.com/presence-engine/presence/events"
)

// Role is what a NATS user of the embedded server may do. The engine turns each
// role into NATS permissions (Permissions); everything a role does not allow is
// refused by the server with a permissions violation.
type Role string

const (
	// RoleUser is an end user, tied to one contact: it may set and read only its
	// own status (presence.set.<own token>, presence.self.<own token>), read
	// everyone's visible status and consume the feed.
	RoleUser Role = "user"
	// RoleSubscriber is a backend service: it may consume the feed and read
	// visible status, and set nobody's.
	RoleSubscriber Role = "subscriber"
	// RoleAuditor may do what a subscriber does, read the log (the truth,
	// invisible included) and anyone's self, and ask the engine for a digest or
	// a verify.
	RoleAuditor Role = "auditor"
	// RoleOperator may do what an auditor does, and rebuild the projection.
	RoleOperator Role = "operator"
)

// EngineUser is the name the engine connects to its embedded server as, with a
// password drawn at each start: the only user that may write the streams.
const EngineUser = "presence-engine"

// AuthUser is one NATS user of the embedded server.
type AuthUser struct {
	Name string `json:"name"` // letters, digits, - and _; at most 64
	// Password is the password in clear, or a bcrypt hash of it ("$2a$...",
	// as `nats server passwd` makes), which the server checks.
	Password string `json:"password"`
	Role     Role   `json:"role"`
	// Contact is the contact a user of RoleUser is; no other role has one.
	Contact string `json:"contact,omitempty"`
}

// AuthConfig is the users of the embedded server: presence serve --auth FILE.
type AuthConfig struct {
	Users []AuthUser `json:"users"`
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// LoadAuth reads an AuthConfig from a JSON file:
//
//	{"users": [
//	  {"name": "alice", "password": "...", "role": "user", "contact": "sip:alice@contoso.com"},
//	  {"name": "crm", "password": "...", "role": "subscriber"},
//	  {"name": "audit", "password": "...", "role": "auditor"}
//	]}
func LoadAuth(path string) (*AuthConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg AuthConfig
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("auth file %s: %w; want {\"users\":[{\"name\",\"password\",\"role\",\"contact\"}, ...]}", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return &cfg, nil
}

// Validate checks every user, with errors that name the user and the value.
func (c *AuthConfig) Validate() error {
	if len(c.Users) == 0 {
		return errors.New("no users: an auth configuration with no user would let nobody in")
	}
	seen := make(map[string]bool, len(c.Users))
	for i, u := range c.Users {
		switch {
		case !userName.MatchString(u.Name):
			return fmt.Errorf("user %d: name %q: want 1 to 64 letters, digits, - or _", i+1, u.Name)
		case u.Name == EngineUser, u.Name == EngineAccount:
			return fmt.Errorf("user %q: the name is the engine's own", u.Name)
		case seen[u.Name]:
			return fmt.Errorf("user %q: given twice", u.Name)
		case u.Password == "":
			return fmt.Errorf("user %q: no password", u.Name)
		case !printable(u.Password):
			return fmt.Errorf("user %q: the password has a control character, a line or paragraph separator, or is not UTF-8; want printable characters only", u.Name)
		}
		seen[u.Name] = true
		switch u.Role {
		case RoleUser:
			if err := events.ValidateContact(u.Contact); err != nil {
				return fmt.Errorf("user %q: role user needs the contact it is: %w", u.Name, err)
			}
		case RoleSubscriber, RoleAuditor, RoleOperator:
			if u.Contact != "" {
				return fmt.Errorf("user %q: role %s has no contact (got %q); only role user has one", u.Name, u.Role, u.Contact)
			}
		default:
			return fmt.Errorf("user %q: role %q: want user, subscriber, auditor or operator", u.Name, u.Role)
		}
	}
	return nil
}

// printable reports whether s is UTF-8 with no control character and no
// line or paragraph separator: what goes into nats-server's configuration as
// it is (ConfigJSON).
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}

// ValidAccountName checks the name of an account given for the engine's.
func ValidAccountName(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("account %q: want 1 to 64 letters, digits, - or _", name)
	}
	return nil
}

// Permissions returns what the user may publish and subscribe to.
func (u AuthUser) Permissions() *server.Permissions {
	pub, sub := roleSubjects(u.Role, events.Token(u.Contact))
	sub = append(sub, client.InboxPrefix(u.Name)+".>")
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// roleSubjects is what a role may publish to and subscribe to, its inbox
// aside; token is a user's contact's.
func roleSubjects(role Role, token string) (pub, sub []string) {
	// Reading visible status and consuming the feed: every role. Not the
	// account's JetStream info ($JS.API.INFO): its storage grows with every
	// event, hidden ones included.
	pub = append(pub, events.StatusPrefix+"*", events.StatusesSubject)
	pub = append(pub, streamReadAPI(events.FeedStream)...)
	sub = append(sub, events.LivePrefix+">")
	switch role {
	case RoleUser:
		pub = append(pub, events.SetPrefix+token, events.SelfPrefix+token,
			events.SignInPrefix+token, events.HeartbeatPrefix+token, events.ReportPrefix+token, events.SignOutPrefix+token,
			events.PreferPrefix+token, events.SettingsPrefix+token)
	case RoleAuditor, RoleOperator:
		pub = append(pub, events.SelfPrefix+"*", events.DigestSubject, events.VerifySubject)
		sub = append(sub, events.ProgressPrefix+">") // of a verify or rebuild
		pub = append(pub, streamReadAPI(events.LogStream)...)
		if role == RoleOperator {
			pub = append(pub, events.RebuildSubject)
		}
	}
	return pub, sub
}

// streamReadAPI is the JetStream API a reader of a stream needs: its info,
// consumers on it (create, info, next, reset, delete, ack), and gets of one
// message (a subscriber reads the feed's entry at a sequence: where it
// starts, and to see that the feed still holds the one it handed over last).
// Nothing that changes the stream itself; and of its consumers, nothing but
// what a reader does with its own: no list of their names (a durable's name
// is its owner's secret), no pause (a paused consumer of the engine's stalls
// its fold). In an account of a role's own, the creation, info, reset and
// delete of a consumer are imported from the engine's guard
// (consumerGuard), which creates pull consumers only, and each account's
// for it alone.
func streamReadAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		jsConsumerAPI + "CREATE." + stream + ".>", // named, with its filter or not
		jsConsumerAPI + "INFO." + stream + ".*",
		jsConsumerAPI + "RESET." + stream + ".*",
		jsConsumerAPI + "DELETE." + stream + ".*",
		jsConsumerAPI + "MSG.NEXT." + stream + ".*",
		"$JS.ACK." + stream + ".>",
	}
}

// EnginePermissions is what an engine's own user needs on a server of one's
// own (serve --nats), in an account of the engine's: the JetStream API (it
// makes and shapes its streams, buckets and consumers), its buckets' subjects,
// the acknowledgements and flow control of its consumers, every presence
// subject (it appends to the log, publishes the feed and its repeats, serves
// the requests and passes sets on to owners), the service's discovery
// ($SRV), its inbox, and answers to the requests it serves, whatever inbox
// they came from.
func EnginePermissions() *server.Permissions {
	pub := []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "presence.>", "$SRV.>", "_INBOX.>"}
	for _, b := range []string{events.RequestsBucket, events.OwnersBucket, events.EngineBucket} {
		pub = append(pub, "$KV."+b+".>")
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{"presence.>", "$SRV.>", "_INBOX.>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1},
	}
}

// newSecret returns a random password.
func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// EngineAccount is the default name of the account of the engine, its
// streams and its buckets on a server with accounts (the embedded server's,
// with --auth): every other user has an account of its own, which imports
// from it what its role may use (AuthUser.Account).
//
// Accounts are what keeps each user to its own: within one account, the
// server delivers an answer to whatever reply subject the request named, and
// a consumer's deliveries to whatever subject its creator named, whoever
// may publish there or not. A user of an account of its own can only have
// them delivered in its own account.
const EngineAccount = "PRESENCE"

// AccountConfig is an account as nats-server's configuration spells it (in
// JSON, which the configuration accepts).
type AccountConfig struct {
	JetStream string       `json:"jetstream,omitempty"`
	Users     []UserConfig `json:"users"`
	Exports   []Export     `json:"exports,omitempty"`
	Imports   []Import     `json:"imports,omitempty"`
}

// UserConfig is a user of an account.
type UserConfig struct {
	User        string             `json:"user"`
	Password    string             `json:"password"`
	Permissions *PermissionsConfig `json:"permissions,omitempty"`
}

// PermissionsConfig is a user's permissions.
type PermissionsConfig struct {
	Publish        *server.SubjectPermission `json:"publish,omitempty"`
	Subscribe      *server.SubjectPermission `json:"subscribe,omitempty"`
	AllowResponses bool                      `json:"allow_responses,omitempty"`
}

// Export is what an account lets others import: a service (requests to it,
// answered) or a stream (messages on it).
type Export struct {
	Service           string `json:"service,omitempty"`
	Stream            string `json:"stream,omitempty"`
	ResponseType      string `json:"response_type,omitempty"`
	ResponseThreshold string `json:"response_threshold,omitempty"`
}

// Import is what an account takes from another: To, if set, is the subject
// in the importing account that the other's Subject is reached at.
type Import struct {
	Service *ImportSource `json:"service,omitempty"`
	Stream  *ImportSource `json:"stream,omitempty"`
	To      string        `json:"to,omitempty"`
}

// ImportSource is an exporting account and the subject it exports.
type ImportSource struct {
	Account string `json:"account"`
	Subject string `json:"subject"`
}

func permissionsConfig(p *server.Permissions) *PermissionsConfig {
	if p == nil {
		return nil
	}
	return &PermissionsConfig{Publish: p.Publish, Subscribe: p.Subscribe, AllowResponses: p.Response != nil}
}

// Account is the user's account: the user, with its permissions, and the
// imports from engineAccount of what its role may use.
func (u AuthUser) Account(engineAccount string) AccountConfig {
	pub, sub := roleSubjects(u.Role, events.Token(u.Contact))
	return AccountConfig{
		Users:   []UserConfig{{User: u.Name, Password: u.Password, Permissions: permissionsConfig(u.Permissions())}},
		Imports: roleImports(engineAccount, u.Name, pub, sub),
	}
}

// roleImports is the imports from the engine's account of what a role may
// publish (as services) and subscribe to (as streams). A consumer's
// creation, info, reset and delete are imported from the engine's guard
// (consumerGuard); and "$JS.API.INFO" from a subject nothing answers, so
// that the server's own answer to the account's JetStream requests
// (JetStream is not enabled here) does not come first.
// owner names the account to the guard.
func roleImports(engineAccount, owner string, pub, sub []string) []Import {
	from := func(subject string) *ImportSource { return &ImportSource{Account: engineAccount, Subject: subject} }
	var out []Import
	for _, s := range pub {
		if guarded, ok := guardedSubject(s, owner); ok {
			out = append(out, Import{Service: from(guarded), To: s})
			continue
		}
		out = append(out, Import{Service: from(s)})
	}
	for _, s := range sub {
		out = append(out, Import{Stream: from(s)})
	}
	return append(out, Import{Service: from(events.NoAccountInfoSubject), To: "$JS.API.INFO"})
}

// EngineAccountConfig is the engine's account, with JetStream, its user and
// the exports every role imports from. perms, if not nil, are the engine
// user's (EnginePermissions, on a server of one's own).
func EngineAccountConfig(user, password string, perms *server.Permissions) AccountConfig {
	return AccountConfig{
		JetStream: "enabled",
		Users:     []UserConfig{{User: user, Password: password, Permissions: permissionsConfig(perms)}},
		Exports:   roleExports(),
	}
}

// adminResponseThreshold is how long the server keeps the way back to an
// admin request's requester open: a verify or rebuild answers once it is
// done.
const adminResponseThreshold = "24h"

// roleExports is everything any role imports: the subjects of the widest
// roles, a user's of any contact and an operator's.
func roleExports() []Export {
	seen := map[string]bool{}
	var out []Export
	for _, role := range []Role{RoleUser, RoleOperator} {
		pub, sub := roleSubjects(role, "*")
		for _, im := range roleImports("", "*", pub, sub) {
			var ex Export
			switch {
			case im.Stream != nil:
				ex.Stream = im.Stream.Subject
			case strings.HasPrefix(im.Service.Subject, jsConsumerAPI+"MSG.NEXT."):
				ex.Service, ex.ResponseType = im.Service.Subject, "stream" // a pull request's messages
			case strings.HasPrefix(im.Service.Subject, events.AdminPrefix):
				ex.Service, ex.ResponseThreshold = im.Service.Subject, adminResponseThreshold
			default:
				ex.Service = im.Service.Subject
			}
			if key := ex.Service + " " + ex.Stream; !seen[key] {
				seen[key] = true
				out = append(out, ex)
			}
		}
	}
	return out
}

// serverAccounts is the configuration of the embedded server's accounts:
// the engine's, its user EngineUser with enginePassword, and one of each
// user's.
func (c *AuthConfig) serverAccounts(enginePassword string) (string, error) {
	accounts := map[string]AccountConfig{EngineAccount: EngineAccountConfig(EngineUser, enginePassword, nil)}
	for _, u := range c.Users {
		accounts[u.Name] = u.Account(EngineAccount)
	}
	data, err := ConfigJSON(map[string]any{"accounts": accounts}, "")
	return string(data), err
}

// ConfigJSON writes v as JSON that nats-server's configuration reads: its
// parser takes no \u escapes, which encoding/json writes for <, > and & by
// default (and subjects end in >). Control characters, line and paragraph
// separators and bytes that are not UTF-8, which it would escape so too, are
// refused where a user gives a value (Validate).
func ConfigJSON(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	err := enc.Encode(v)
	return b.Bytes(), err
}
