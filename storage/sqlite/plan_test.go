package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans checks that the lookups of a large tree use their indexes
// rather than scanning every leaf of the tree.
func TestQueryPlans(t *testing.T) {
	db := openTestDB(t)
	for _, tc := range []struct {
		name, query, wantIndex string
	}{
		{"ByMerkleHash", expand(selectLeavesByMerkleHashSQL, 2, "?"), "SequencedLeafMerkleIdx"},
		{"ByMerkleHashOrdered", expand(selectLeavesByMerkleHashSQL, 2, "?") + orderBySequenceNumberSQL, "SequencedLeafMerkleIdx"},
		{"ByIdentityHash", expand(selectLeavesByLeafIdentityHashSQL, 2, "?"), "SequencedLeafIdentityIdx"},
		{"ByRange", selectLeavesByRangeSQL, "SequenceNumber>?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.reader.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+tc.query, 1, []byte("a"), []byte("b"))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if !strings.Contains(strings.Join(plan, "\n"), tc.wantIndex) {
				t.Errorf("plan does not use %s:\n%s", tc.wantIndex, strings.Join(plan, "\n"))
			}
		})
	}
}
