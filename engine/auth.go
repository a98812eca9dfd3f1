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
		case u.Name == EngineUser:
			return fmt.Errorf("user %q: the name is the engine's own", u.Name)
		case seen[u.Name]:
			return fmt.Errorf("user %q: given twice", u.Name)
		case u.Password == "":
			return fmt.Errorf("user %q: no password", u.Name)
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

// Permissions returns what the user may publish and subscribe to.
func (u AuthUser) Permissions() *server.Permissions {
	var pub, sub []string
	sub = append(sub, client.InboxPrefix(u.Name)+".>")
	// Reading visible status and consuming the feed: every role. Not the
	// account's JetStream info ($JS.API.INFO): its storage grows with every
	// event, hidden ones included.
	pub = append(pub, events.StatusPrefix+"*", events.StatusesSubject)
	pub = append(pub, streamReadAPI(events.FeedStream)...)
	sub = append(sub, events.ChangesPrefix+">", events.LivePrefix+">")
	switch u.Role {
	case RoleUser:
		token := events.Token(u.Contact)
		pub = append(pub, events.SetPrefix+token, events.SelfPrefix+token,
			events.SignInPrefix+token, events.HeartbeatPrefix+token, events.ReportPrefix+token, events.SignOutPrefix+token,
			events.PreferPrefix+token, events.SettingsPrefix+token)
	case RoleAuditor, RoleOperator:
		pub = append(pub, events.SelfPrefix+"*", events.DigestSubject, events.VerifySubject)
		sub = append(sub, events.ProgressPrefix+">") // of a verify or rebuild
		pub = append(pub, streamReadAPI(events.LogStream)...)
		if u.Role == RoleOperator {
			pub = append(pub, events.RebuildSubject)
		}
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// streamReadAPI is the JetStream API a reader of a stream needs: its info,
// consumers on it (create, info, next, delete, ack), and gets of one message (a
// subscriber reads the feed's entry at a sequence: where it starts, and to see
// that the feed still holds the one it handed over last). Nothing that changes
// the stream itself; and of its consumers, nothing but what a reader does
// with its own: no list of their names (a durable's name is its owner's
// secret), no pause (a paused consumer of the engine's stalls its fold).
func streamReadAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,        // with several filters
		"$JS.API.CONSUMER.CREATE." + stream + ".>", // named, with its filter
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
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

// serverUsers turns the configuration into the server's users, the engine's
// own included.
func (c *AuthConfig) serverUsers(enginePassword string) []*server.User {
	users := []*server.User{{Username: EngineUser, Password: enginePassword}} // no Permissions: everything
	for _, u := range c.Users {
		users = append(users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions()})
	}
	return users
}

// newSecret returns a random password.
func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
