package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ctstage/ctstage/internal/serve"
)

func serveCmd(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serve.Options
	fs.StringVar(&o.DataDir, "data", "./ctstage-data", "directory for all state: databases, keys, generated roots")
	fs.StringVar(&o.ConfigFile, "config", "", "optional YAML config file; the built-in defaults serve without it")
	fs.StringVar(&o.LogAddr, "log-addr", "127.0.0.1:6962", "address of the logs' plain HTTP server")
	fs.StringVar(&o.Storage, "storage", "sqlite", `"sqlite" (files under --data) or "mysql://USER:PASS@HOST:PORT/DB"`)
	fs.StringVar(&o.ExtraRoots, "extra-roots", "", "PEM bundle of more roots that every shard accepts")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "serve:", err)
		return exitUsage
	}
	o.Logger = log
	if err := serve.Run(ctx, o); err != nil {
		log.Error("serve failed", "err", err)
		return exitFail
	}
	return exitOK
}
