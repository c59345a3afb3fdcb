package ctlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ctlog/faults"
	"github.com/ctstage/ctstage/internal/loopback"
)

// LogInfo is one shard in the management API's answers (GET /logs).
type LogInfo struct {
	Shard    string `json:"shard"`
	Type     string `json:"type"` // "rfc6962" or "tiled"
	Operator string `json:"operator"`
	LogID    string `json:"log_id"` // base64, as the log list has it
	URL      string `json:"url,omitempty"`
	// SubmissionURL and MonitoringURL are a tiled shard's.
	SubmissionURL string `json:"submission_url,omitempty"`
	MonitoringURL string `json:"monitoring_url,omitempty"`
	// State takes effect at StateAt; Effective is the state in force now.
	State     string    `json:"state"`
	StateAt   time.Time `json:"state_at"`
	Effective string    `json:"effective_state"`
	// FinalTreeHead is a frozen shard's tree, once recorded.
	FinalTreeHead *TreeHead      `json:"final_tree_head,omitempty"`
	Faults        []faults.Fault `json:"faults"`
}

// MgmtHandler is the log-state and fault API (docs/faults.md), behind
// loopback.Guard: GET /logs, POST /logs/<shard>/state, POST and DELETE
// /logs/<shard>/faults. Serve it on the loopback management address.
func (s *Server) MgmtHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs", s.serveLogs)
	mux.HandleFunc("GET /logs/{shard}", s.withShard(s.serveShard))
	mux.HandleFunc("POST /logs/{shard}/state", s.withShard(s.serveSetState))
	mux.HandleFunc("POST /logs/{shard}/faults", s.withShard(s.serveAddFault))
	mux.HandleFunc("DELETE /logs/{shard}/faults", s.withShard(s.serveClearFaults))
	mux.HandleFunc("/logs/", func(w http.ResponseWriter, r *http.Request) {
		mgmtError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return loopback.Guard(mux)
}

// Info describes one shard as GET /logs does.
func (s *Server) Info(f *front) LogInfo {
	rec := f.state.get()
	info := LogInfo{
		Shard: f.name, Type: "rfc6962", Operator: f.operator,
		LogID: base64.StdEncoding.EncodeToString(f.logID[:]),
		State: rec.State, StateAt: rec.At, Effective: rec.effective(time.Now()),
		FinalTreeHead: rec.Final, Faults: f.faults.List(),
	}
	if f.tiled {
		info.Type, info.SubmissionURL, info.MonitoringURL = "tiled", s.shardURL(f.name), s.shardURL(f.name)
	} else {
		info.URL = s.shardURL(f.name)
	}
	return info
}

func (s *Server) serveLogs(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Logs []LogInfo `json:"logs"`
	}{Logs: s.Shards()}
	writeMgmt(w, http.StatusOK, out)
}

// Shards describes every shard, in config order, as GET /logs does.
func (s *Server) Shards() []LogInfo {
	out := []LogInfo{}
	for _, f := range s.fronts {
		out = append(out, s.Info(f))
	}
	return out
}

// Submissions is how many add-chain and add-pre-chain requests this
// process received for shard, whatever their outcome (0 for an unknown
// shard): the dashboard's submissions per second.
func (s *Server) Submissions(shard string) uint64 {
	if f := s.byName[shard]; f != nil {
		return f.submissions.Load()
	}
	return 0
}

// ErrNoShard is returned for a shard name that is not one of the server's.
var ErrNoShard = errors.New("no such shard")

// AddFault sets a fault on shard, given as the body of POST
// /logs/<shard>/faults (docs/faults.md); an error for a fault that does
// not decode or apply is the caller's mistake.
func (s *Server) AddFault(shard string, body []byte) (LogInfo, error) {
	f := s.byName[shard]
	if f == nil {
		return LogInfo{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	flt, err := faults.Decode(body, f.tiled)
	if err == nil {
		err = f.faults.Add(flt, time.Now())
	}
	if err != nil {
		return LogInfo{}, err
	}
	s.log.Warn("log fault set", "shard", f.name, "fault", string(flt.Kind), "body", string(bytes.TrimSpace(body)))
	return s.Info(f), nil
}

// ClearFaults clears every fault of shard.
func (s *Server) ClearFaults(shard string) (LogInfo, error) {
	f := s.byName[shard]
	if f == nil {
		return LogInfo{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	n := f.faults.Clear()
	s.log.Info("log faults cleared", "shard", f.name, "cleared", n)
	return s.Info(f), nil
}

func (s *Server) withShard(h func(http.ResponseWriter, *http.Request, *front)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := s.byName[r.PathValue("shard")]
		if f == nil {
			mgmtError(w, http.StatusNotFound, fmt.Sprintf("no shard %q (GET /logs lists them)", r.PathValue("shard")))
			return
		}
		h(w, r, f)
	}
}

func (s *Server) serveShard(w http.ResponseWriter, _ *http.Request, f *front) {
	writeMgmt(w, http.StatusOK, s.Info(f))
}

// StateRequest is the body of POST /logs/<shard>/state.
type StateRequest struct {
	State string `json:"state"`
	// At is when the state takes effect, RFC 3339; empty is now.
	At string `json:"at,omitempty"`
}

func (s *Server) serveSetState(w http.ResponseWriter, r *http.Request, f *front) {
	var req StateRequest
	if !decodeStrict(w, r, &req) {
		return
	}
	info, err := s.SetState(f.name, req)
	switch {
	case errors.Is(err, errSaveState):
		mgmtError(w, http.StatusInternalServerError, "couldn't save the state")
	case err != nil:
		mgmtError(w, http.StatusBadRequest, err.Error())
	default:
		writeMgmt(w, http.StatusOK, info)
	}
}

var errSaveState = errors.New("couldn't save the state")

// SetState sets shard's state, as POST /logs/<shard>/state does; an
// error other than a failure to save it is the caller's mistake.
func (s *Server) SetState(shard string, req StateRequest) (LogInfo, error) {
	f := s.byName[shard]
	if f == nil {
		return LogInfo{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	if !slices.Contains(States, req.State) {
		return LogInfo{}, fmt.Errorf("state: %q is not one of %s", req.State, strings.Join(States, ", "))
	}
	var at time.Time
	if req.At != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, req.At); err != nil {
			return LogInfo{}, fmt.Errorf("at: %q is not an RFC 3339 time", req.At)
		}
	}
	rec, err := f.state.set(req.State, at, time.Now())
	if err != nil {
		s.log.Error("couldn't save a shard's state", "shard", f.name, "err", err)
		return LogInfo{}, errSaveState
	}
	s.log.Info("shard state set", "shard", f.name, "state", rec.State, "at", rec.At, "previous", rec.Previous)
	s.changed()
	return s.Info(f), nil
}

func (s *Server) serveAddFault(w http.ResponseWriter, r *http.Request, f *front) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		mgmtError(w, http.StatusBadRequest, "couldn't read the body: "+err.Error())
		return
	}
	info, err := s.AddFault(f.name, body)
	if err != nil {
		mgmtError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeMgmt(w, http.StatusOK, info)
}

func (s *Server) serveClearFaults(w http.ResponseWriter, _ *http.Request, f *front) {
	info, _ := s.ClearFaults(f.name)
	writeMgmt(w, http.StatusOK, info)
}

// decodeStrict decodes one JSON value of the body into v, refusing
// unknown fields; on failure it has answered 400.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		mgmtError(w, http.StatusBadRequest, "the body is not valid: "+err.Error())
		return false
	}
	return true
}

func mgmtError(w http.ResponseWriter, status int, msg string) {
	writeMgmt(w, status, map[string]string{"error": msg})
}

func writeMgmt(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
