package verify

import (
	"net/http"
	"sync"
	"time"
	"unicode/utf8"
)

// The answers' headers, shared and never changed.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// answers are the buffers the answers are written into.
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAnswer writes a VerifyResponse as encoding/json writes it (fields in
// order, empty ones left out, a final newline), without reflection: it is
// every verification's answer.
func writeAnswer(w http.ResponseWriter, status int, r *VerifyResponse) {
	answerHeader(w, status)
	bp := answers.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0])
	_, _ = w.Write(b)
	*bp = b
	answers.Put(bp)
}

// answerHeader writes the header of an answer, with the shared values.
func answerHeader(w http.ResponseWriter, status int) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
}

// appendJSON appends the answer as encoding/json encodes it, and a newline.
func (r *VerifyResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"valid":`...)
	if r.Valid {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	field := func(name, v string) {
		if v != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = appendString(b, v)
		}
	}
	field("code", string(r.Code))
	field("namespace", r.Namespace)
	field("name", r.Name)
	field("class", r.Class)
	field("owner", r.Owner)
	field("role", r.Role)
	if len(r.Scopes) > 0 {
		b = append(b, `,"scopes":[`...)
		for i, s := range r.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	if r.ExpiresAt != nil {
		b = append(b, `,"expiresAt":"`...)
		b = r.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	field("keyPrefix", r.KeyPrefix)
	if r.Previous {
		b = append(b, `,"previous":true`...)
	}
	if r.ValidUntil != nil {
		b = append(b, `,"validUntil":"`...)
		b = r.ValidUntil.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	field("error", r.Error)
	return append(b, "}\n"...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it: quotes, backslashes and control characters; <, > and & (so
// that the answer is safe in HTML); U+2028 and U+2029; and invalid UTF-8
// as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
