package scalebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"github.com/google/certificate-transparency-go/trillian/ctfe/configpb"
	"github.com/google/trillian/crypto/keyspb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ctstage/ctstage/internal/loadgen"
)

// stockStack is the stock Trillian + ct_server stack serving the
// benchmark's own tree from the same MySQL database: Trillian's
// trillian_log_server and ct-go's ct_server, each its own process,
// speaking gRPC over loopback TCP, both with their default flags apart
// from addresses. It only reads (no trillian_log_signer runs: ctstage's
// sequencer owns the tree), which is all get-entries needs.
type stockStack struct {
	url  string
	lc   *client.LogClient
	cmds []*exec.Cmd
}

// stockBinaries are the programs Config.Stock must hold.
var stockBinaries = []string{"trillian_log_server", "ct_server"}

// startStock starts the stock stack on the shard's tree.
func (b *bench) startStock(ctx context.Context) (*stockStack, error) {
	if !strings.HasPrefix(b.cfg.Storage, "mysql://") {
		return nil, fmt.Errorf("%w: the stock stack needs --storage mysql://", ErrConfig)
	}
	for _, name := range stockBinaries {
		if _, err := os.Stat(filepath.Join(b.cfg.Stock, name)); err != nil {
			return nil, fmt.Errorf("%w: stock stack: %w", ErrConfig, err)
		}
	}
	mc, err := mysqlConfig(b.cfg.Storage)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.cfg.DataDir, "stock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	rpc, tmetrics, web := ports[0], ports[1], ports[2]

	// ct_server's key only signs its get-sth answers, which get-entries
	// does not use; a key of its own keeps the shard's key in ctstage.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	priv, err := anypb.New(&keyspb.PrivateKey{Der: der})
	if err != nil {
		return nil, err
	}
	cfg := &configpb.LogConfigSet{Config: []*configpb.LogConfig{{
		LogId:        b.tree.TreeId,
		Prefix:       "stock",
		RootsPemFile: []string{filepath.Join(b.cfg.DataDir, "loadtest-ca", loadgen.CARootFile)},
		PrivateKey:   priv,
	}}}
	text, err := prototext.MarshalOptions{Multiline: true}.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "ct_server.cfg")
	if err := os.WriteFile(cfgFile, text, 0o600); err != nil {
		return nil, err
	}

	s := &stockStack{url: "http://" + web + "/stock"}
	start := func(name string, args ...string) error {
		out, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return err
		}
		defer out.Close()
		cmd := exec.Command(filepath.Join(b.cfg.Stock, name), args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return err
		}
		s.cmds = append(s.cmds, cmd)
		return nil
	}
	if err := start("trillian_log_server",
		"--mysql_uri="+mc.FormatDSN(), "--rpc_endpoint="+rpc, "--http_endpoint="+tmetrics); err != nil {
		return nil, err
	}
	if err := start("ct_server",
		"--log_config="+cfgFile, "--log_rpc_server="+rpc, "--http_endpoint="+web); err != nil {
		s.stop()
		return nil, err
	}
	if s.lc, err = client.New(s.url, b.hc, jsonclient.Options{UserAgent: "ctstage-bench-scale"}); err != nil {
		s.stop()
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := s.lc.GetSTH(ctx)
		if err == nil {
			b.log.Info("stock stack up", "url", s.url, "logs", dir)
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the stock stack does not answer get-sth (its logs are in %s): %w", dir, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends the stack's processes.
func (s *stockStack) stop() {
	for i := len(s.cmds) - 1; i >= 0; i-- {
		c := s.cmds[i]
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	s.cmds = nil
}

// freePorts returns n distinct loopback addresses free at the time of the
// call.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
