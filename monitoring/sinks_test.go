package monitoring

import (
	"bufio"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// notification is one request a receiver sink recorded.
type notification struct {
	Path string         // /slack/incidents, /slack/monitoring, /pagerduty
	Body map[string]any // the JSON posted
}

// webhookSink stands in for Slack's incoming webhooks and PagerDuty's
// Events API: it records every JSON POST by path and answers as they do.
type webhookSink struct {
	url string
	mu  sync.Mutex
	got []notification
}

func startWebhookSink(t *testing.T) *webhookSink {
	t.Helper()
	s := &webhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var body map[string]any
		if err != nil || r.Method != http.MethodPost || json.Unmarshal(b, &body) != nil {
			t.Errorf("receiver sink: %s %s: not a JSON POST: %v %.200s", r.Method, r.URL.Path, err, b)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, notification{Path: r.URL.Path, Body: body})
		s.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/pagerduty") {
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"success","message":"Event processed"}`)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// posts returns the notifications recorded so far on path.
func (s *webhookSink) posts(path string) []notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []notification
	for _, n := range s.got {
		if n.Path == path {
			out = append(out, n)
		}
	}
	return out
}

func (s *webhookSink) all() []notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notification(nil), s.got...)
}

// slackTitleText returns the title and text of a Slack post's attachment.
func slackTitleText(n notification) (title, text string) {
	atts, _ := n.Body["attachments"].([]any)
	if len(atts) == 0 {
		return "", ""
	}
	a, _ := atts[0].(map[string]any)
	title, _ = a["title"].(string)
	text, _ = a["text"].(string)
	return title, text
}

// email is one message the SMTP sink received.
type email struct {
	From    string
	To      []string // RCPT TO
	Header  mail.Header
	Subject string
	Body    string // every text part, decoded
}

// smtpSink is a minimal SMTP server (RFC 5321's EHLO, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT; no TLS, no AUTH advertised) that records each message.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	got  []email
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := s.serve(c); err != nil && err != io.EOF {
					t.Logf("SMTP sink: %v", err)
				}
			}()
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) error {
	tp := textproto.NewConn(c)
	if err := tp.PrintfLine("220 sink ESMTP"); err != nil {
		return err
	}
	var from string
	var to []string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			err = tp.PrintfLine("250-sink\r\n250 8BITMIME")
		case "MAIL":
			from, to = strings.TrimPrefix(arg, "FROM:"), nil
			err = tp.PrintfLine("250 OK")
		case "RCPT":
			to = append(to, strings.Trim(strings.TrimPrefix(arg, "TO:"), "<>"))
			err = tp.PrintfLine("250 OK")
		case "DATA":
			if err = tp.PrintfLine("354 end with <CRLF>.<CRLF>"); err != nil {
				return err
			}
			dot := tp.DotReader()
			msg, rerr := mail.ReadMessage(bufio.NewReader(dot))
			if rerr != nil {
				return rerr
			}
			e, rerr := decodeEmail(msg)
			if rerr != nil {
				return rerr
			}
			if _, rerr := io.Copy(io.Discard, dot); rerr != nil {
				return rerr
			}
			e.From, e.To = strings.Trim(from, "<>"), to
			s.mu.Lock()
			s.got = append(s.got, e)
			s.mu.Unlock()
			err = tp.PrintfLine("250 OK: queued")
		case "RSET", "NOOP":
			err = tp.PrintfLine("250 OK")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return nil
		default:
			err = tp.PrintfLine("502 command not implemented")
		}
		if err != nil {
			return err
		}
	}
}

// decodeEmail reads the subject and the decoded text of every part.
func decodeEmail(msg *mail.Message) (email, error) {
	e := email{Header: msg.Header}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return e, err
	}
	e.Subject = subject
	var body strings.Builder
	var read func(h textproto.MIMEHeader, r io.Reader) error
	read = func(h textproto.MIMEHeader, r io.Reader) error {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			mt = "text/plain"
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := read(p.Header, p); err != nil {
					return err
				}
			}
		}
		if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, err := io.ReadAll(r)
		body.Write(b)
		return err
	}
	if err := read(textproto.MIMEHeader(msg.Header), msg.Body); err != nil {
		return e, err
	}
	e.Body = body.String()
	return e, nil
}

func (s *smtpSink) emails() []email {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]email(nil), s.got...)
}
