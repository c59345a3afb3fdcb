package serve

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/internal/election"
)

// Roles are what one process of a deployment runs (docs/design.md,
// "Roles"). The zero value, and "all", is every role: one process that
// is the whole of ctstage.
type Roles struct {
	// Log serves the shards: the RFC 6962 frontends and the tiled shards.
	Log bool
	// Sequencer integrates and signs the RFC 6962 trees, behind the
	// election when Options.Election is set.
	Sequencer bool
	// CA runs the CA, its management endpoint and the ACME server.
	CA bool
}

// RoleNames are the values of --role, which takes one or several,
// comma-separated.
var RoleNames = []string{"all", "log", "sequencer", "ca"}

// ParseRoles reads --role: "all", or any of "log", "sequencer" and "ca"
// joined by commas.
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "all":
			r = Roles{Log: true, Sequencer: true, CA: true}
		case "log":
			r.Log = true
		case "sequencer":
			r.Sequencer = true
		case "ca":
			r.CA = true
		default:
			return Roles{}, fmt.Errorf("--role %q: want %s, or several of log, sequencer and ca joined by commas", s, strings.Join(RoleNames, ", "))
		}
	}
	return r, nil
}

// all is the zero value's meaning.
func (r Roles) orAll() Roles {
	if r == (Roles{}) {
		return Roles{Log: true, Sequencer: true, CA: true}
	}
	return r
}

// String is the roles as --role takes them.
func (r Roles) String() string {
	r = r.orAll()
	if r.Log && r.Sequencer && r.CA {
		return "all"
	}
	var names []string
	for _, x := range []struct {
		on   bool
		name string
	}{{r.Log, "log"}, {r.Sequencer, "sequencer"}, {r.CA, "ca"}} {
		if x.on {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

// logRole is ctlog's part of the roles.
func (r Roles) logRole() ctlog.Role {
	var lr ctlog.Role
	if r.Log {
		lr |= ctlog.RoleFrontend
	}
	if r.Sequencer {
		lr |= ctlog.RoleSequencer
	}
	return lr
}

// checkRoles refuses the combinations that would fork a log or serve
// nothing: a process that is not the whole of ctstage shares its storage
// with others, so it needs MySQL; a CA without the logs in its process
// needs their list.
func (st *Stage) checkRoles() error {
	o := st.opts
	r := o.Roles.orAll()
	whole := r.Log && r.Sequencer && r.CA
	mysql := strings.HasPrefix(o.Storage, "mysql://")
	if !whole && !mysql {
		return fmt.Errorf("--role %s: a process with only some roles shares its storage with the others, so it needs --storage mysql://", r)
	}
	if o.Election != "" {
		if !r.Sequencer {
			return fmt.Errorf("--election is for the sequencer role; --role %s has none", r)
		}
		if !mysql {
			return errors.New("--election: sequencers elected among processes share their trees on --storage mysql://")
		}
		if _, err := election.ParseEndpoints(o.Election); err != nil {
			return err
		}
	}
	if u := o.Logs.PublicURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" {
			return fmt.Errorf("--log-url %q: want http(s)://HOST[:PORT], no path", u)
		}
	}
	if r.CA && !r.Log && o.CA.LogList == "" {
		return fmt.Errorf("--role %s: a CA without the log role in its process needs --log-list (a log frontend's /log.v3.json)", r)
	}
	return nil
}

// electionPrefix names the elections of one deployment: every process on
// the same database campaigns under the same keys.
func electionPrefix(database string) string {
	return "/ctstage/" + database + "/sequencer/"
}

// openElection connects to etcd for --election; nil without one.
func (st *Stage) openElection(context.Context) (*election.Factory, error) {
	if st.opts.Election == "" {
		return nil, nil
	}
	eps, err := election.ParseEndpoints(st.opts.Election)
	if err != nil {
		return nil, err
	}
	// The client connects lazily and retries on its own: an etcd that is
	// down at start delays the first election, it does not stop serve.
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: election.DefaultTTL, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("--election: %w", err)
	}
	st.undo.push("etcd client", func(context.Context) error { return c.Close() })
	host, _ := os.Hostname()
	f, err := election.NewFactory(c, election.Options{
		Instance: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), st.opts.Logs.Addr),
		Prefix:   electionPrefix(st.store.backend.Name),
	})
	if err != nil {
		return nil, err
	}
	st.log.Info("sequencers elected on etcd", "endpoints", eps, "prefix", electionPrefix(st.store.backend.Name),
		"ttl", election.DefaultTTL)
	return f, nil
}
