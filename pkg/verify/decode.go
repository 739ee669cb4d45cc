package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
)

// bodies are the buffers request bodies are read into.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// decodeVerifyRequest reads a verification request's body, at most
// MaxBodyBytes of it, and decodes it as encoding/json would, into a
// struct that takes no field it does not name and nothing after the
// object: a body of the usual shape (known fields, strings of printable
// ASCII without escapes) by a scanner of that shape alone, any other by
// encoding/json, which then says what is wrong. The problem, when there is
// one, names no value: a body may hold a key. The buffer goes back to its
// pool cleared, for the same reason.
func decodeVerifyRequest(r io.Reader) (verifyRequest, string) {
	bp := bodies.Get().(*[]byte)
	body, err := readAll(r, (*bp)[:0], MaxBodyBytes)
	defer func() {
		clear(body)
		*bp = body[:0]
		bodies.Put(bp)
	}()
	if err != nil {
		return verifyRequest{}, decodeError(err)
	}
	if req, ok := scanVerifyRequest(body); ok {
		return req, ""
	}
	return decodeJSON(body)
}

// decodeJSON is decodeVerifyRequest's way for bodies of any other shape.
// (Apart, so that only this way moves the request to the heap.)
func decodeJSON(body []byte) (req verifyRequest, problem string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, "the body must hold exactly one JSON object"
	}
	return req, ""
}

// readAll appends r's bytes to b until EOF, or fails once there are more
// than limit.
func readAll(r io.Reader, b []byte, limit int) ([]byte, error) {
	for {
		if len(b) > limit {
			return b, &http.MaxBytesError{Limit: int64(limit)}
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), limit+1)])
		b = b[:len(b)+n]
		switch {
		case errors.Is(err, io.EOF):
			return b, nil
		case err != nil:
			return b, err
		}
	}
}

// scanVerifyRequest decodes a body of the usual shape, or says it is not
// one. What it accepts, encoding/json decodes to the same request
// (FuzzScanVerifyRequest): an object of known field names, spelt as the
// tags spell them, whose values are strings (lists of strings for the
// list fields) of printable ASCII without escapes; a field given twice
// keeps its last value.
func scanVerifyRequest(b []byte) (req verifyRequest, ok bool) {
	s := scanner{b: b}
	field := func() bool {
		name, ok := s.plainString()
		if !ok || !s.next(':') {
			return false
		}
		switch string(name) {
		case "key":
			return s.stringInto(&req.Key)
		case "role":
			return s.stringInto(&req.Role)
		case "namespace":
			return s.stringInto(&req.Namespace)
		case "class":
			return s.stringInto(&req.Class)
		case "scopes":
			return s.stringsInto(&req.Scopes)
		case "namespaces":
			return s.stringsInto(&req.Namespaces)
		case "classes":
			return s.stringsInto(&req.Classes)
		}
		return false
	}
	if !s.next('{') || !s.items('}', field) {
		return req, false
	}
	s.space()
	return req, s.i == len(s.b)
}

// scanner reads JSON of the usual shape from b, at i.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c, after white space, if it comes next.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// plainString consumes a string of printable ASCII without escapes and
// returns its bytes, unquoted.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	for j := s.i; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[s.i:j]
			s.i = j + 1
			return v, true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) stringInto(v *string) bool {
	b, ok := s.plainString()
	if ok {
		*v = string(b)
	}
	return ok
}

// stringsInto consumes a list of plain strings; an empty list is empty,
// not nil, as encoding/json decodes it.
func (s *scanner) stringsInto(v *[]string) bool {
	list := []string{}
	ok := s.next('[') && s.items(']', func() bool {
		b, ok := s.plainString()
		list = append(list, string(b))
		return ok
	})
	if ok {
		*v = list
	}
	return ok
}

// items consumes the items of an object or a list, each by item, and the
// closing byte; the opening one is consumed already.
func (s *scanner) items(closing byte, item func() bool) bool {
	if s.next(closing) {
		return true
	}
	for {
		if !item() {
			return false
		}
		if !s.next(',') {
			return s.next(closing)
		}
	}
}
