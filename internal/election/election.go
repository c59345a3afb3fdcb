// Package election elects one sequencer per tree on etcd, behind
// Trillian's election2 interface, so that Trillian's own OperationManager
// runs it exactly as it runs its etcd election.
//
// It follows Trillian's util/election2/etcd (campaign, observe, resign on
// an etcd concurrency.Election) with two differences that a failover
// within seconds needs:
//   - the session's lease TTL is set (Trillian's factory keeps etcd's
//     60 s default, so a killed master holds its trees for a minute);
//   - the mastership context also ends when the session does: when etcd
//     has been unreachable for the lease's TTL, this process stops
//     signing, because by then another process may hold the tree once
//     etcd is back. Trillian's OperationManager then makes a new
//     Election, with a new session, and campaigns again.
package election

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/trillian/util/election2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// resignID is the value a resigning master proclaims, as in Trillian's
// etcd election, so that observers see the resignation at once.
const resignID = "<resign>"

// DefaultTTL is the lease TTL: a killed master's trees are free after at
// most this long.
const DefaultTTL = 3 * time.Second

// ParseEndpoints reads --election: "etcd://HOST:PORT[,HOST:PORT...]".
func ParseEndpoints(spec string) ([]string, error) {
	rest, ok := strings.CutPrefix(spec, "etcd://")
	if !ok {
		return nil, fmt.Errorf("--election %q: want etcd://HOST:PORT[,HOST:PORT...]", spec)
	}
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		hp = strings.TrimSpace(hp)
		u, err := url.Parse("http://" + hp)
		if hp == "" || err != nil || u.Host != hp || u.Port() == "" {
			return nil, fmt.Errorf("--election %q: %q is not HOST:PORT", spec, hp)
		}
		eps = append(eps, "http://"+hp)
	}
	return eps, nil
}

// Factory makes one Election per tree; every process of a deployment
// uses the same Prefix.
type Factory struct {
	client   *clientv3.Client
	instance string
	prefix   string
	ttl      int
}

// Options configure a Factory.
type Options struct {
	// Instance names this process in etcd (the value a master proclaims).
	Instance string
	// Prefix is the key prefix of the elections, e.g. "/ctstage/sequencer/".
	Prefix string
	// TTL is the session lease's TTL, rounded up to whole seconds;
	// DefaultTTL when 0.
	TTL time.Duration
}

// NewFactory elects on client; the caller closes client after every
// Election made from it is closed.
func NewFactory(client *clientv3.Client, o Options) (*Factory, error) {
	if o.Instance == "" || o.Prefix == "" {
		return nil, errors.New("election: an instance name and a prefix are required")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	ttl := int((o.TTL + time.Second - 1) / time.Second)
	return &Factory{client: client, instance: o.Instance, prefix: strings.TrimRight(o.Prefix, "/") + "/", ttl: ttl}, nil
}

// NewElection starts a session (a lease kept alive in the background)
// for the election of resourceID.
func (f *Factory) NewElection(ctx context.Context, resourceID string) (election2.Election, error) {
	s, err := concurrency.NewSession(f.client, concurrency.WithTTL(f.ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("couldn't start an etcd session: %w", err)
	}
	return &Election{instance: f.instance, ttl: f.ttl, session: s, election: concurrency.NewElection(s, f.prefix+resourceID)}, nil
}

// Election is one process's part in the election of one tree.
type Election struct {
	instance string
	ttl      int // seconds
	session  *concurrency.Session
	election *concurrency.Election
}

// Await blocks until this process is the master, or ctx ends, or the
// session does.
func (e *Election) Await(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.session.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := e.election.Campaign(ctx, e.instance); err != nil {
		if sessionDone(e.session) {
			return errors.New("the etcd session expired while campaigning")
		}
		return err
	}
	return nil
}

// WithMastership returns a context that ends when this process stops
// being the master: another took over, it resigned, the session ended,
// or ctx did. It is already done when this process is not the master.
func (e *Election) WithMastership(ctx context.Context) (context.Context, error) {
	cctx, cancel := context.WithCancel(ctx)
	rev := e.election.Rev()
	if rev == 0 || sessionDone(e.session) {
		cancel()
		return cctx, nil
	}
	ch := e.election.Observe(cctx)
	select {
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	case <-e.session.Done():
		cancel()
		return cctx, nil
	case rsp, ok := <-ch:
		if lost(rsp, ok, rev) {
			cancel()
			return cctx, nil
		}
	}
	go func() {
		defer cancel()
		for {
			select {
			case <-e.session.Done():
				return
			case rsp, ok := <-ch:
				if lost(rsp, ok, rev) {
					return
				}
			}
		}
	}()
	return cctx, nil
}

// lost reports whether an observation says this process, master since
// revision rev, is not any more: another's key leads, or it resigned.
func lost(rsp *clientv3.GetResponse, ok bool, rev int64) bool {
	return !ok || rsp == nil || len(rsp.Kvs) == 0 || rsp.Kvs[0].CreateRevision != rev || string(rsp.Kvs[0].Value) == resignID
}

// Resign gives mastership up; it is a no-op when not the master.
func (e *Election) Resign(ctx context.Context) error {
	err := e.election.Proclaim(ctx, resignID)
	if errors.Is(err, concurrency.ErrElectionNotLeader) {
		return nil
	}
	if err != nil {
		return err
	}
	return e.election.Resign(ctx)
}

// Close resigns and ends the session, whose lease's revocation removes
// this process's keys even if the resignation failed. A session already
// ended (etcd unreachable for the TTL) has no keys left to remove.
func (e *Election) Close(ctx context.Context) error {
	if sessionDone(e.session) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.ttl)*time.Second)
	defer cancel()
	_ = e.Resign(ctx)
	return e.session.Close()
}

func sessionDone(s *concurrency.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}
