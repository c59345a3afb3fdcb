package va

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/miekg/dns"
)

// DNSServer serves a Zone over UDP and TCP on one loopback port, in the
// manner of pebble-challtestsrv: A and AAAA from the zone's addresses, TXT
// and CAA records as set. It is authoritative for every name.
type DNSServer struct {
	udp, tcp *dns.Server
	addr     string
	done     sync.WaitGroup // the two serving goroutines
}

// ListenDNS starts serving z on addr (UDP and TCP, same port; port 0
// picks one).
func ListenDNS(addr string, z *Zone, log *slog.Logger) (*DNSServer, error) {
	pc, l, err := listenUDPAndTCP(addr)
	if err != nil {
		return nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := answer(z, r)
		if w.LocalAddr().Network() == "udp" {
			fitUDP(m, r)
		}
		w.WriteMsg(m)
	})
	// UDPSize is the read buffer: miekg/dns's default of 512 bytes cuts a
	// longer query (EDNS0 options, padding) short, and the cut query is
	// answered FORMERR.
	// ListenDNS returns once both servers run: miekg/dns's Shutdown of a
	// server that has not started yet fails and leaves it serving.
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	udp := &dns.Server{PacketConn: pc, Handler: h, UDPSize: dns.MaxMsgSize, NotifyStartedFunc: notify}
	tcp := &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: notify}
	s := &DNSServer{udp: udp, tcp: tcp, addr: pc.LocalAddr().String()}
	errs := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("DNS server stopped", "err", err)
				errs <- err
			}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			s.Close()
			return nil, fmt.Errorf("couldn't serve DNS: %w", err)
		}
	}
	return s, nil
}

// listenUDPAndTCP listens on the same port over UDP and TCP. With port 0,
// the port UDP picked may be taken for TCP (by any TCP socket, a client's
// too): then it tries other ports.
func listenUDPAndTCP(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't listen for DNS: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || try == 20 {
			return nil, nil, fmt.Errorf("couldn't listen for DNS over TCP: %w", err)
		}
	}
}

// Addr is the address served, host:port.
func (s *DNSServer) Addr() string { return s.addr }

// Close stops serving and waits for the servers' goroutines to end.
func (s *DNSServer) Close() error {
	err := errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	s.done.Wait()
	return err
}

// fitUDP truncates an answer over UDP to the size the query allows: 512
// bytes, or its EDNS0 buffer size, which the answer echoes (RFC 6891).
// The truncated answer has TC set, so the client retries over TCP.
func fitUDP(m, r *dns.Msg) {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		m.SetEdns0(uint16(size), false)
	}
	m.Truncate(size)
}

func answer(z *Zone, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 0}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		for _, a := range z.Addrs(q.Name) {
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	case dns.TypeTXT:
		for _, v := range z.TXT(q.Name) {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
		}
	case dns.TypeCAA:
		for _, c := range z.CAA(q.Name) {
			m.Answer = append(m.Answer, &dns.CAA{Hdr: hdr, Flag: c.Flag, Tag: c.Tag, Value: c.Value})
		}
	}
	return m
}
