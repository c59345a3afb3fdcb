package loadgen

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"
)

// ErrNoLog reports that a log list has no log that fits.
var ErrNoLog = errors.New("no suitable log in the log list")

// PickLog returns the first log of ll, in list order, that takes
// submissions (pending, qualified or usable) and whose temporal interval,
// if it has one, contains notAfter.
func PickLog(ll *loglist3.LogList, notAfter time.Time) (*loglist3.Log, error) {
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			if !takesSubmissions(l.State) {
				continue
			}
			if ti := l.TemporalInterval; ti != nil && (notAfter.Before(ti.StartInclusive) || !notAfter.Before(ti.EndExclusive)) {
				continue
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w: none takes certificates with NotAfter %s", ErrNoLog, notAfter.UTC().Format(time.RFC3339))
}

func takesSubmissions(s *loglist3.LogStates) bool {
	return s == nil || s.Pending != nil || s.Qualified != nil || s.Usable != nil
}
