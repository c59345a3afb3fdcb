package va

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzZone holds a record of every type the server answers, some of them
// large enough that an answer over UDP without EDNS0 must be truncated.
func fuzzZone(t testing.TB) *Zone {
	big := make([]netip.Addr, 40)
	for i := range big {
		big[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
	}
	z := NewZone(nil, map[string][]netip.Addr{
		"big.example.com":    big,
		"v4.example.com":     {mustAddr(t, "192.0.2.1"), mustAddr(t, "192.0.2.2")},
		"*.wild.example.com": {mustAddr(t, "192.0.2.3"), mustAddr(t, "2001:db8::3")},
	})
	z.AddTXT("_acme-challenge.example.com", "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0")
	for _, c := range "abcd" {
		z.AddTXT("big.example.com", strings.Repeat(string(c), 255))
	}
	z.SetCAA("example.com", []CAA{
		{Tag: "issue", Value: "ctstage.invalid; accounturi=https://127.0.0.1:14000/acme/acct/1"},
		{Tag: "issuewild", Value: ";"},
		{Flag: 128, Tag: "iodef", Value: "mailto:security@example.com"},
	})
	return z
}

// FuzzDNSServer sends outside bytes as one query to a DNSServer over real
// loopback UDP and TCP. The server must never panic, and must answer
// whenever miekg/dns's server passes the bytes on (at least a header, not
// a response) with a well-formed response carrying the query's ID: over
// UDP within 512 bytes or the query's EDNS0 size, and for a standard query
// that parses an authoritative NOERROR answer to its question (over TCP
// untruncated).
func FuzzDNSServer(f *testing.F) {
	s, err := ListenDNS("127.0.0.1:0", fuzzZone(f), quiet())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	for _, seed := range dnsSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query []byte) {
		if len(query) <= 65507 { // the largest UDP payload over IPv4
			checkDNSAnswer(t, "udp", query, exchangeDNS(t, "udp", s.Addr(), query))
		}
		if len(query) <= dns.MaxMsgSize {
			checkDNSAnswer(t, "tcp", query, exchangeDNS(t, "tcp", s.Addr(), query))
		}
	})
}

// dnsSeeds are real queries, and a few that the server must not answer or
// must refuse.
func dnsSeeds(t testing.TB) [][]byte {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	query := func(name string, qtype uint16, edns uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if edns != 0 {
			m.SetEdns0(edns, true)
		}
		return pack(m)
	}
	twoQuestions := new(dns.Msg)
	twoQuestions.SetQuestion("example.com.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "example.org.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	response := new(dns.Msg)
	response.SetQuestion("example.com.", dns.TypeA)
	response.Response = true
	padded := new(dns.Msg) // over 512 bytes: RFC 7830 padding
	padded.SetQuestion("_acme-challenge.example.com.", dns.TypeTXT)
	padded.SetEdns0(1232, false)
	opt := padded.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, 600)})
	a := query("v4.example.com.", dns.TypeA, 0)
	return [][]byte{
		a,
		query("big.example.com.", dns.TypeAAAA, 0),
		query("x.wild.example.com.", dns.TypeAAAA, 1232),
		query("_acme-challenge.example.com.", dns.TypeTXT, 0),
		query("big.example.com.", dns.TypeTXT, 0),
		query("big.example.com.", dns.TypeTXT, 4096),
		query("big.example.com.", dns.TypeTXT, 100),
		query("EXAMPLE.com.", dns.TypeCAA, 0),
		query("example.com.", dns.TypeANY, 0),
		query(".", dns.TypeNS, 65535),
		pack(padded),
		pack(twoQuestions),
		pack(response),
		a[:len(a)-3], // truncated question
		a[:11],       // shorter than a header
		{},
	}
}

// exchangeDNS sends query over network to addr and returns the answer, or
// nil when miekg/dns's server drops the bytes (shorter than a header, or
// a response). It fails the test when an answer is due and none comes.
func exchangeDNS(t *testing.T, network, addr string, query []byte) []byte {
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // no TIME_WAIT: the fuzzer opens many connections
	}
	msg := query
	if network == "tcp" {
		msg = binary.BigEndian.AppendUint16(nil, uint16(len(query)))
		msg = append(msg, query...)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("%s: couldn't send the query: %v", network, err)
	}
	if !answerDue(query) {
		return nil
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if network == "udp" {
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("udp: no answer to %x: %v", query, err)
		}
		return buf[:n]
	}
	var n uint16
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		t.Fatalf("tcp: no answer to %x: %v", query, err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("tcp: answer to %x cut short: %v", query, err)
	}
	return buf
}

// answerDue says whether miekg/dns's server passes query on to be
// answered (by the handler, or with its own FORMERR or NOTIMP) rather
// than dropping it.
func answerDue(query []byte) bool {
	return len(query) >= 12 && dns.DefaultMsgAcceptFunc(header(query)) != dns.MsgIgnore
}

// header is the header of query, at least 12 bytes long.
func header(query []byte) dns.Header {
	return dns.Header{
		Id:      binary.BigEndian.Uint16(query[0:]),
		Bits:    binary.BigEndian.Uint16(query[2:]),
		Qdcount: binary.BigEndian.Uint16(query[4:]),
		Ancount: binary.BigEndian.Uint16(query[6:]),
		Nscount: binary.BigEndian.Uint16(query[8:]),
		Arcount: binary.BigEndian.Uint16(query[10:]),
	}
}

// checkDNSAnswer checks the answer (nil: none) the server gave over
// network to query.
func checkDNSAnswer(t *testing.T, network string, query, answer []byte) {
	if answer == nil {
		return
	}
	var r dns.Msg
	if err := r.Unpack(answer); err != nil {
		t.Fatalf("%s: answer %x to %x does not parse: %v", network, answer, query, err)
	}
	if !r.Response || r.Id != binary.BigEndian.Uint16(query) {
		t.Fatalf("%s: answer to %x: QR %v, ID %d, want a response with ID %d", network, query, r.Response, r.Id, binary.BigEndian.Uint16(query))
	}
	q, err := standardQuery(query)
	if network == "udp" && len(answer) > udpLimit(q) {
		t.Fatalf("udp: answer of %d bytes to a query that allows %d:\n%v", len(answer), udpLimit(q), &r)
	}
	if err != nil {
		return // FORMERR or NOTIMP (miekg/dns's echoes the query's flags)
	}
	if network == "tcp" && r.Truncated {
		t.Fatalf("tcp: truncated answer to %v:\n%v", q, &r)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		t.Fatalf("%s: answer to the standard query\n%v\nis not an authoritative answer to its question:\n%v", network, q, &r)
	}
	for _, rr := range r.Answer {
		if h := rr.Header(); h.Name != q.Question[0].Name || h.Rrtype != q.Question[0].Qtype {
			t.Fatalf("%s: answer to %v holds %v", network, q.Question[0], rr)
		}
	}
}

// standardQuery parses query and returns it if miekg/dns's server hands
// it to the handler (a query or NOTIFY with one question and at most 1
// answer, 1 authority and 2 additional records, all of which parse) and
// it has the one question it claims.
func standardQuery(query []byte) (*dns.Msg, error) {
	var m dns.Msg
	if err := m.Unpack(query); err != nil {
		return nil, err
	}
	if dns.DefaultMsgAcceptFunc(header(query)) != dns.MsgAccept || len(m.Question) != 1 {
		return nil, errors.New("not a standard query with one question")
	}
	return &m, nil
}

// udpLimit is the largest answer over UDP that q allows (RFC 6891 6.2.5):
// its EDNS0 payload size, at least 512 bytes.
func udpLimit(q *dns.Msg) int {
	if q != nil {
		if opt := q.IsEdns0(); opt != nil {
			return max(int(opt.UDPSize()), dns.MinMsgSize)
		}
	}
	return dns.MinMsgSize
}
