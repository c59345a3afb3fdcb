package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/ctlog/faults"
)

const logUsage = `usage: ctstage log <subcommand> [flags] [args]

  list                          the shards, their states and faults
  state SHARD STATE [--at TIME] set a shard's state (pending, qualified, usable,
                                readonly, retired, rejected), effective at TIME
                                (RFC 3339; default now)
  fault SHARD KIND [flags]      set a fault (docs/faults.md lists the kinds)
  clear SHARD                   clear a shard's faults

Every subcommand takes --mgmt-addr (default 127.0.0.1:6963).
`

// logCmd drives a running serve's log-state and fault API.
func logCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, logUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("log "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("mgmt-addr", "127.0.0.1:6963", "address of the serve's management endpoint")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	var want int // positional arguments
	var at *string
	var f faultFlags
	switch sub {
	case "list":
	case "state":
		want = 2
		at = fs.String("at", "", "when the state takes effect, RFC 3339 (default now)")
	case "fault":
		want = 2
		f.register(fs)
	case "clear":
		want = 1
	default:
		fmt.Fprintf(stderr, "log: unknown subcommand %q\n", sub)
		fmt.Fprint(stderr, logUsage)
		return exitUsage
	}
	pos, err := splitArgs(fs, args, want)
	if err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		fmt.Fprintf(stderr, "log %s: %v\n", sub, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	base := "http://" + *addr
	var method, url string
	var body any
	switch sub {
	case "list":
		method, url = http.MethodGet, base+"/logs"
	case "state":
		method, url, body = http.MethodPost, base+"/logs/"+pos[0]+"/state", ctlog.StateRequest{State: pos[1], At: *at}
	case "fault":
		flt, err := f.fault(fs, pos[1])
		if err != nil {
			fmt.Fprintf(stderr, "log fault: %v\n", err)
			return exitUsage
		}
		method, url, body = http.MethodPost, base+"/logs/"+pos[0]+"/faults", flt
	case "clear":
		method, url = http.MethodDelete, base+"/logs/"+pos[0]+"/faults"
	}
	out, err := mgmtCall(ctx, method, url, body)
	if err != nil {
		fmt.Fprintf(stderr, "log %s: %v\n", sub, err)
		return exitFail
	}
	if *asJSON {
		stdout.Write(out)
		return exitOK
	}
	var logs []ctlog.LogInfo
	if sub == "list" {
		var l struct {
			Logs []ctlog.LogInfo `json:"logs"`
		}
		err = json.Unmarshal(out, &l)
		logs = l.Logs
	} else {
		var one ctlog.LogInfo
		err = json.Unmarshal(out, &one)
		logs = []ctlog.LogInfo{one}
	}
	if err != nil {
		fmt.Fprintf(stderr, "log %s: couldn't read the answer: %v\n", sub, err)
		return exitFail
	}
	printLogs(stdout, logs)
	return exitOK
}

// splitArgs parses flags that may come before, between or after the
// want positional arguments.
func splitArgs(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != want {
		return nil, fmt.Errorf("want %d arguments, got %d (%q)", want, len(pos), pos)
	}
	return pos, nil
}

func mgmtCall(ctx context.Context, method, url string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(rsp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if rsp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", rsp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s", rsp.Status)
	}
	return b, nil
}

func printLogs(w io.Writer, logs []ctlog.LogInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tTYPE\tSTATE\tSINCE\tNOW\tFAULTS")
	for _, l := range logs {
		var fl []string
		for _, f := range l.Faults {
			fl = append(fl, string(f.Kind))
		}
		fs := strings.Join(fl, ",")
		if fs == "" {
			fs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Shard, l.Type, l.State, l.StateAt.Format(time.RFC3339), l.Effective, fs)
	}
	tw.Flush()
}

// faultFlags are log fault's flags, one per Fault parameter.
type faultFlags struct {
	fraction                      float64
	endpoints, names, issuers, cl string
	status, retryAfter, min, max  int
	after                         int
	offset                        time.Duration
}

func (f *faultFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&f.fraction, "fraction", 1, "fraction of requests touched, 0 to 1 (split_view: of client addresses)")
	fs.StringVar(&f.endpoints, "endpoints", "", "comma-separated endpoints to narrow the fault to (default all it applies to)")
	fs.IntVar(&f.status, "status", 0, "unavailable: 503 (default), 500 or 429")
	fs.IntVar(&f.retryAfter, "retry-after", 0, "unavailable: Retry-After seconds (default 5)")
	fs.IntVar(&f.min, "min-ms", 0, "delay: least latency, ms")
	fs.IntVar(&f.max, "max-ms", 0, "delay: most latency, ms")
	fs.StringVar(&f.names, "names", "", "reject: comma-separated DNS name suffixes")
	fs.StringVar(&f.issuers, "issuers", "", "reject: comma-separated issuer common names")
	fs.IntVar(&f.after, "after", -1, "no_integrate, no_publish: integrate (publish) entries this many seconds late (default never)")
	fs.DurationVar(&f.offset, "offset", 0, "sct_timestamp_skew: offset of SCT timestamps, e.g. 10m or -2h")
	fs.StringVar(&f.cl, "clients", "", "split_view: comma-separated client IPs shown the fork")
}

// fault builds the fault from the flags the user set.
func (f *faultFlags) fault(fs *flag.FlagSet, kind string) (faults.Fault, error) {
	flt := faults.Fault{Kind: faults.Kind(kind)}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "fraction":
			v := f.fraction
			flt.Fraction = &v
		case "endpoints":
			flt.Endpoints = split(f.endpoints)
		case "status":
			flt.Status = f.status
		case "retry-after":
			flt.RetryAfterS = f.retryAfter
		case "min-ms":
			flt.MinMS = f.min
		case "max-ms":
			flt.MaxMS = f.max
		case "names":
			flt.Names = split(f.names)
		case "issuers":
			flt.Issuers = split(f.issuers)
		case "after":
			v := f.after
			flt.AfterS = &v
		case "offset":
			flt.OffsetMS = f.offset.Milliseconds()
		case "clients":
			flt.Clients = split(f.cl)
		}
	})
	if flt.AfterS != nil && *flt.AfterS < 0 {
		err = fmt.Errorf("--after %s: want 0 or more seconds", strconv.Itoa(*flt.AfterS))
	}
	return flt, err
}
