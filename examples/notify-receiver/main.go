// Command notify-receiver is an example receiver of Keywarden's
// notifications, with nothing but Go's standard library: it checks each
// notification's signature with the class's shared secret, refuses one
// signed with another secret or replayed later, and takes each
// notification once by its id, however often Keywarden sends it.
//
//	kubectl keywarden shared-secret show payments > secret.txt
//	notify-receiver -listen :8080 -secret-file secret.txt -seen-file seen.txt
//
// It prints one JSON line for each notification it takes. Adapt what it
// does then (mail the owner, open a ticket) to your needs.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// event is what a notification carries (a structured CloudEvent).
type event struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
	Data    struct {
		Key struct {
			Namespace, Name, Owner, DisplayName string
		} `json:"key"`
		Event   string `json:"event"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	} `json:"data"`
}

type receiver struct {
	secretFile string
	tolerance  time.Duration

	mu   sync.Mutex
	seen map[string]bool
	file *os.File // the ids taken, one a line, kept across restarts
	out  *json.Encoder
}

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	secretFile := flag.String("secret-file", "", "file holding the shared secret, one a line (two while a rotation overlaps); read at each request")
	seenFile := flag.String("seen-file", "seen.txt", "file keeping the ids of the notifications taken")
	tolerance := flag.Duration("tolerance", 5*time.Minute, "how old a signature may be")
	flag.Parse()
	if *secretFile == "" {
		log.Fatal("-secret-file is required")
	}
	r := &receiver{secretFile: *secretFile, tolerance: *tolerance, seen: map[string]bool{}, out: json.NewEncoder(os.Stdout)}
	f, err := os.OpenFile(*seenFile, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	for s := bufio.NewScanner(f); s.Scan(); {
		r.seen[s.Text()] = true
	}
	r.file = f
	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	log.Printf("listening on %s", *listen)
	log.Fatal(srv.ListenAndServe())
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	if err := r.verify(body, req.Header.Get("Keywarden-Signature"), time.Now()); err != nil {
		log.Printf("rejected a notification: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var e event
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
		http.Error(w, "not a CloudEvent", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[e.ID] {
		// Sent again (a retry, a restart): taken already; say so, and
		// Keywarden stops sending it.
		log.Printf("duplicate %s", e.ID)
		return
	}
	// Kept before it is acknowledged: a crash after this line makes
	// Keywarden send it again, and it is then a duplicate.
	if _, err := fmt.Fprintln(r.file, e.ID); err != nil || r.file.Sync() != nil {
		http.Error(w, "cannot keep the id", http.StatusInternalServerError)
		return
	}
	r.seen[e.ID] = true
	_ = r.out.Encode(map[string]string{
		"accepted": e.ID, "type": e.Type, "subject": e.Subject, "owner": e.Data.Key.Owner,
		"event": e.Data.Event, "reason": e.Data.Reason, "message": e.Data.Message,
	})
}

// verify checks the header t=<unix time>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">[,v1=...] against the secrets of the secret file.
func (r *receiver) verify(body []byte, header string, now time.Time) error {
	b, err := os.ReadFile(r.secretFile)
	if err != nil {
		return fmt.Errorf("reading the secret: %w", err)
	}
	var t string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("no signature")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > r.tolerance || d < -r.tolerance {
		return errors.New("the signature is too old: a replay?")
	}
	for _, secret := range strings.Fields(string(b)) {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(t + "."))
		m.Write(body)
		want := hex.EncodeToString(m.Sum(nil))
		for _, s := range sigs {
			if hmac.Equal([]byte(s), []byte(want)) {
				return nil
			}
		}
	}
	return errors.New("bad signature: not signed with the shared secret")
}
