package ctlog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/keyfile"
)

// LogList describes every shard in Chrome's v3 log list schema, which
// ct-go's loglist3, certspotter and Boulder's ctpolicy read.
func (s *Server) LogList() *loglist3.LogList {
	ll := &loglist3.LogList{
		Version:          "1",
		LogListTimestamp: time.Now().UTC().Truncate(time.Second),
	}
	ops := map[string]*loglist3.Operator{}
	operator := func(name string) *loglist3.Operator {
		op := ops[name]
		if op == nil {
			op = &loglist3.Operator{Name: name, Email: s.operatorEmail(name), Logs: []*loglist3.Log{}, TiledLogs: []*loglist3.TiledLog{}}
			ops[name] = op
			ll.Operators = append(ll.Operators, op)
		}
		return op
	}
	for _, sh := range s.shards {
		op := operator(sh.cfg.Operator)
		op.Logs = append(op.Logs, s.logEntry(sh))
	}
	for _, t := range s.tiled {
		op := operator(t.cfg.Operator)
		op.TiledLogs = append(op.TiledLogs, s.tiledLogEntry(t))
	}
	return ll
}

func (s *Server) operatorEmail(name string) []string {
	for _, o := range s.opts.Config.Operators {
		if o.Name == name && len(o.Email) > 0 {
			return o.Email
		}
	}
	return []string{}
}

func (s *Server) logEntry(sh *shard) *loglist3.Log {
	return &loglist3.Log{
		Description:      sh.cfg.description(),
		LogID:            sh.logID[:],
		Key:              sh.pubDER,
		URL:              s.shardURL(sh.cfg.Name),
		MMD:              int32(sh.cfg.MMD / time.Second),
		State:            s.listState(s.byName[sh.cfg.Name]),
		TemporalInterval: sh.cfg.temporalInterval(),
		Type:             "test",
	}
}

// description is the shard's log list description: its name when the
// config gives none.
func (s Shard) description() string {
	if s.Description == "" {
		return s.Name
	}
	return s.Description
}

// temporalInterval is the shard's NotAfter window, nil when it has none.
func (s Shard) temporalInterval() *loglist3.TemporalInterval {
	if s.NotAfterStart.IsZero() {
		return nil
	}
	return &loglist3.TemporalInterval{StartInclusive: s.NotAfterStart.UTC(), EndExclusive: s.NotAfterLimit.UTC()}
}

// shardURL is the base URL of a shard, ending in "/", as log lists have it.
func (s *Server) shardURL(name string) string {
	return strings.TrimRight(s.opts.BaseURL, "/") + "/" + name + "/"
}

// listState is a shard's state as the log list has it: the state and
// when it takes effect, and for a readonly shard its final tree head (the
// current head until the frozen one is recorded).
func (s *Server) listState(f *front) *loglist3.LogStates {
	rec := f.state.get()
	var head TreeHead
	if rec.State == StateReadOnly && rec.Final == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		head, _ = s.head(ctx, f)
		cancel()
	}
	return logStates(rec, head)
}

func (s *Server) serveLogList(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(s.LogList(), "", "  ")
	if err != nil {
		http.Error(w, "couldn't encode the log list", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// WriteLogList writes the log list to path (normally --data/log_list.json).
func (s *Server) WriteLogList(path string) error {
	b, err := json.MarshalIndent(s.LogList(), "", "  ")
	if err != nil {
		return fmt.Errorf("couldn't encode the log list: %w", err)
	}
	return keyfile.WriteFileAtomic(path, append(b, '\n'), 0o644)
}
