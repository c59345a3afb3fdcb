package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"github.com/google/trillian/extension"
	tintegration "github.com/google/trillian/integration"
	"github.com/google/trillian/quota"
	stestonly "github.com/google/trillian/storage/testonly"
	"github.com/google/trillian/testonly/integration"
)

// TestLogIntegration runs Trillian's own end-to-end log test (queue leaves
// over gRPC, sequence them with live sequencers, read them back, check
// inclusion and consistency proofs against an in-memory Merkle tree) on
// this storage. Trillian's duplicate-leaves variant is not run: it expects
// every queued duplicate to become a new entry, which holds for its memory
// storage only; this storage, like Trillian's MySQL one, de-duplicates (see
// TestQueueDuplicateLeaf).
func TestLogIntegration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		unique int64
	}{{"UniqueLeaves", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openTestDB(t)
			env, err := integration.NewLogEnvWithRegistry(ctx, 2, extension.Registry{
				AdminStorage: db.AdminStorage(),
				LogStorage:   db.LogStorage(),
				QuotaManager: quota.Noop(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer env.Close()
			tree, err := client.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: stestonly.LogTree}, env.Admin, env.Log)
			if err != nil {
				t.Fatal(err)
			}
			params := tintegration.DefaultTestParameters(tree.TreeId)
			params.UniqueLeaves = tc.unique
			params.SequencingPollWait = 100 * time.Millisecond
			if err := tintegration.RunLogIntegration(env.Log, params); err != nil {
				t.Fatalf("Trillian's log integration test failed: %v", err)
			}
		})
	}
}
