package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// session is what the console keeps of a signed-in person, in this
// process only: the token it acts with, who the API server says they are,
// and when the session ends. The cookie holds only a random id.
type session struct {
	ID      string
	Token   string
	User    string
	Expires time.Time
	// done says what the person's last action did, for the next page of
	// the key it was done to, once.
	done struct{ key, text string }
}

// maxSessions bounds the sessions kept, and maxSessionsPerUser those of
// one person: a flood of sign-ins grows neither the process nor one
// person's share. A person past their share ends their own oldest
// session; past the whole bound, the person holding the most sessions
// gives up their oldest when they hold more than the one signing in
// would, and otherwise the sign-in is refused until sessions end.
const (
	maxSessions        = 10000
	maxSessionsPerUser = 20
)

// errTooManySessions refuses a sign-in while the console holds
// maxSessions live sessions.
var errTooManySessions = errors.New("too many sessions")

// sessions are the console's sessions, by id and by person. Signing out
// deletes one, so a copied cookie stops working with it.
type sessions struct {
	mu     sync.Mutex
	byID   map[string]*session
	byUser map[string][]*session // oldest first
	mac    []byte                // for the form tokens
}

func newSessions() (*sessions, error) {
	mac := make([]byte, 32)
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	return &sessions{byID: map[string]*session{}, byUser: map[string][]*session{}, mac: mac}, nil
}

// start keeps a new session and returns it.
func (s *sessions) start(token, user string, expires time.Time, now time.Time) (*session, error) {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	v := &session{ID: base64.RawURLEncoding.EncodeToString(id), Token: token, User: user, Expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range slices.Clone(s.byUser[user]) { // remove edits the list
		if !now.Before(old.Expires) {
			s.remove(old)
		}
	}
	if own := s.byUser[user]; len(own) >= maxSessionsPerUser {
		s.remove(own[0])
	}
	if len(s.byID) >= maxSessions {
		// Sign-ins are rate-limited: these scans run at most that often.
		for _, old := range s.byID {
			if !now.Before(old.Expires) {
				s.remove(old)
			}
		}
		if len(s.byID) >= maxSessions {
			// Whoever holds the most sessions gives up their oldest, if
			// they hold more than this person would: identities minted
			// to fill the console crowd out one another, not the people
			// who hold one or two.
			heaviest := ""
			for u, own := range s.byUser {
				if heaviest == "" || len(own) > len(s.byUser[heaviest]) {
					heaviest = u
				}
			}
			if heaviest == "" || len(s.byUser[heaviest]) <= len(s.byUser[user])+1 {
				return nil, errTooManySessions
			}
			s.remove(s.byUser[heaviest][0])
		}
	}
	s.byID[v.ID] = v
	s.byUser[user] = append(s.byUser[user], v)
	return v, nil
}

// remove forgets a session; the caller holds the lock.
func (s *sessions) remove(v *session) {
	delete(s.byID, v.ID)
	own := slices.DeleteFunc(s.byUser[v.User], func(o *session) bool { return o == v })
	if len(own) == 0 {
		delete(s.byUser, v.User)
		return
	}
	s.byUser[v.User] = own
}

var errNoSession = errors.New("no session")

// get returns the live session of an id.
func (s *sessions) get(id string, now time.Time) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if !ok || id == "" {
		return nil, errNoSession
	}
	if !now.Before(v.Expires) {
		s.remove(v)
		return nil, errNoSession
	}
	return v, nil
}

// setDone keeps what an action did to a key, for its page to say once.
// A session the console does not keep (behind a proxy) keeps nothing.
func (s *sessions) setDone(id, key, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.byID[id]; ok {
		v.done.key, v.done.text = key, text
	}
}

// takeDone returns what an action did to key, once.
func (s *sessions) takeDone(id, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if !ok || v.done.key != key {
		return ""
	}
	text := v.done.text
	v.done.key, v.done.text = "", ""
	return text
}

// end forgets a session.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.byID[id]; ok {
		s.remove(v)
	}
}

// csrf is the token every form of a session carries: bound to the
// session, so that it serves no other and dies with it, and unknowable
// without this process's key.
func (s *sessions) csrf(id string) string {
	h := hmac.New(sha256.New, s.mac)
	h.Write([]byte("csrf\x00"))
	h.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (s *sessions) validCSRF(id, got string) bool {
	return got != "" && hmac.Equal([]byte(s.csrf(id)), []byte(got))
}

// tokenExpiry reads the exp claim of a JWT, unverified: only to end a
// session no later than its token (the API server verifies the token on
// every call). Zero when the token is no JWT or has no exp.
func tokenExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0)
}
