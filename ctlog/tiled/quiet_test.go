package tiled

import (
	"context"
	"errors"
	"testing"

	"github.com/transparency-dev/tessera"
)

// countingReader counts the size reads that reach the storage.
type countingReader struct {
	tessera.LogReader
	size, reads int
	err         error
}

func (c *countingReader) IntegratedSize(context.Context) (uint64, error) {
	c.reads++
	return uint64(c.size), c.err
}

func (c *countingReader) NextIndex(context.Context) (uint64, error) {
	c.reads++
	return uint64(c.size + 1), c.err
}

type fakeDriver struct{ r *countingReader }

func (d fakeDriver) Appender(context.Context, *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	return &tessera.Appender{}, d.r, nil
}

func TestQuietReader(t *testing.T) {
	ctx := t.Context()
	if _, err := quiet(struct{}{}); err == nil {
		t.Error("quiet took a driver without Tessera's append lifecycle")
	}
	raw := &countingReader{size: 7}
	d, err := quiet(fakeDriver{raw})
	if err != nil {
		t.Fatal(err)
	}
	_, lr, err := d.(*quietDriver).Appender(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Tessera's metrics loops read the sizes ten times a second: within
	// statsTTL only the first read of each reaches the storage.
	for range 20 {
		if n, err := lr.IntegratedSize(ctx); n != 7 || err != nil {
			t.Fatalf("IntegratedSize = %d, %v; want 7", n, err)
		}
		if n, err := lr.NextIndex(ctx); n != 8 || err != nil {
			t.Fatalf("NextIndex = %d, %v; want 8", n, err)
		}
	}
	if raw.reads != 2 {
		t.Errorf("%d reads reached the storage, want 2", raw.reads)
	}

	// The follower's reader is the storage's own: the size as it is now.
	raw.size = 9
	u := unquiet(lr)
	if u != tessera.LogReader(raw) {
		t.Fatalf("unquiet gave %T, not the driver's reader", u)
	}
	if n, _ := u.IntegratedSize(ctx); n != 9 {
		t.Errorf("unquiet reader's size = %d, want 9", n)
	}
	if unquiet(raw) != tessera.LogReader(raw) {
		t.Error("unquiet of a plain reader is not that reader")
	}

	// A failed read is not cached.
	raw.err = errors.New("storage down")
	q := &quietReader{LogReader: raw}
	if _, err := q.IntegratedSize(ctx); err == nil {
		t.Error("a failed read succeeded")
	}
	raw.err = nil
	if n, err := q.IntegratedSize(ctx); n != 9 || err != nil {
		t.Errorf("after a failed read: %d, %v; want 9", n, err)
	}
}
