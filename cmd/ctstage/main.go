// Command ctstage is a Certificate Transparency staging environment in one
// binary: RFC 6962 logs on an in-process Trillian, and the tools around them.
//
//	ctstage serve [flags]        run the logs, the CA and ACME (see docs/design.md for the flags)
//	ctstage issue [flags]        get a certificate from a running serve's CA
//	ctstage verify [flags] FILE  check SCTs, inclusion proofs and CT policies
//	ctstage bench [flags]        load-test a log's add-pre-chain
//	ctstage bench-scale [flags]  measure a log at two tree sizes
//	ctstage log list|state|fault|clear  drive a serve's log states and faults
//	ctstage monitor [flags]      follow logs, check their tree heads and entries, watch names
//
// Each subcommand has its own flag set: the libraries ctstage builds on
// register global flags of their own, which ctstage never parses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, as docs/design.md fixes them for verify and as every subcommand uses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"serve":       serveCmd,
	"issue":       issueCmd,
	"verify":      verifyCmd,
	"bench":       benchCmd,
	"bench-scale": benchScaleCmd,
	"log":         logCmd,
	"monitor":     monitorCmd,
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ctstage: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: ctstage <command> [flags]

commands:
  serve        run the CT logs, the staging CA and ACME (see docs/design.md and README.md)
  issue        ask a running serve's CA for a certificate with embedded SCTs; prints the chain in PEM
  verify       check a certificate's (or a TLS server's) SCTs, inclusion proofs and Chrome/Apple/Mozilla CT policies
  bench        submit unique precertificate chains to a log and report throughput and merge delay
  bench-scale  grow a log to N entries and measure adds, proofs, get-entries and disk use at two sizes
  log          list a running serve's logs, set their states and faults (docs/faults.md)
  monitor      follow logs (RFC 6962 and tiled), prove their tree heads consistent, read every entry, watch names

Run "ctstage <command> -h" for a command's flags.
`)
}

// parseFlags parses a subcommand's flags; it reports the exit code to use
// when parsing ended the command (-h, or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %q\n", fs.Name(), fs.Args())
		return exitUsage, false
	}
	return 0, true
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
