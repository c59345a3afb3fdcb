package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ctstage/ctstage/internal/httpserver"
	"github.com/ctstage/ctstage/internal/logging"
)

// undoStack holds the closes of everything Start opened, in the order it
// opened them; run pops them in reverse, so that a listener stops before
// the service behind it, a service before its store, a store before the
// storage handle, and the data directory's lock goes last.
type undoStack struct {
	mu    sync.Mutex
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func(context.Context) error
}

// push adds the close of the part called name.
func (u *undoStack) push(name string, fn func(context.Context) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.steps = append(u.steps, undoStep{name, fn})
}

// run pops and runs every step, the last pushed first, and joins their
// errors, each named by its part. A step runs once: a second run does
// nothing.
func (u *undoStack) run(ctx context.Context) error {
	u.mu.Lock()
	steps := u.steps
	u.steps = nil
	u.mu.Unlock()
	var errs []error
	for _, s := range slices.Backward(steps) {
		if err := s.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("couldn't close %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// names lists the parts on the stack, first pushed first (for tests).
func (u *undoStack) names() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ns []string
	for _, s := range u.steps {
		ns = append(ns, s.name)
	}
	return ns
}

// readiness is /healthz: an ordered list of checks, each added by the part
// it belongs to when that part begins to start, walked in order; the first
// that fails answers 503.
type readiness struct {
	mu     sync.RWMutex
	checks []readyCheck
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// add appends a check; its error text follows "not ready: " in the answer.
func (r *readiness) add(name string, check func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, readyCheck{name, check})
}

// ready runs the checks in order and returns the first error.
func (r *readiness) ready(ctx context.Context) error {
	r.mu.RLock()
	checks := slices.Clone(r.checks)
	r.mu.RUnlock()
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ServeHTTP answers /healthz.
func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	if err := r.ready(ctx); err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(1))
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// startingCheck is a readiness check that fails with "<what> starting"
// until its part calls the returned done.
func startingCheck(what string) (check func(context.Context) error, done func()) {
	var mu sync.Mutex
	started := false
	check = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			return errors.New(what + " starting")
		}
		return nil
	}
	return check, func() { mu.Lock(); started = true; mu.Unlock() }
}

// listen opens a TCP listener for the part called name and pushes its
// close (a no-op once its server has closed it).
func (st *Stage) listen(name, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("couldn't listen on %s: %w", name, err)
	}
	st.undo.push(name+" listener", func(context.Context) error {
		if err := lis.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return lis, nil
}

// serveOn serves h on lis (over TLS when tlsCfg is set) with the limits
// of every ctstage listener and one request log line per request, in the
// Stage's errgroup, and pushes the server's graceful shutdown.
func (st *Stage) serveOn(name string, lis net.Listener, h http.Handler, tlsCfg *tls.Config) {
	srv := httpserver.New(logging.Requests(st.log, h), st.opts.ServerLimits, st.log.With("server", name))
	lis = httpserver.Listener(lis, st.opts.ServerLimits)
	if tlsCfg != nil {
		lis = tls.NewListener(lis, tlsCfg)
	}
	st.group.Go(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s stopped serving: %w", name, err)
		}
		return nil
	})
	st.undo.push(name, func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			return errors.Join(err, srv.Close())
		}
		return nil
	})
}

// listenAndServe is listen and serveOn; it returns the address listened on.
func (st *Stage) listenAndServe(name, addr string, h http.Handler, tlsCfg *tls.Config) (string, error) {
	lis, err := st.listen(name, addr)
	if err != nil {
		return "", err
	}
	st.serveOn(name, lis, h, tlsCfg)
	return lis.Addr().String(), nil
}
