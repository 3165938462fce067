package importer_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// TestImport_ARetryAfterEqualToMaxRetryAfterIsWaitedOutAndRetried: a single 429
// whose Retry-After equals --max-retry-after (allowed: only a longer one
// aborts at once) is waited out, and the row sent again: one 429 is no
// stretch of them.
func TestImport_ARetryAfterEqualToMaxRetryAfterIsWaitedOutAndRetried(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const maxWait = 20 * time.Second
		sender := &throttleFirst{n: 1, retryAfter: maxWait}
		data, emails := genCSV(1, "eq") // one row: no other answer resets the stretch
		lim := ratelimit.New(ratelimit.Config{Rate: 100})
		im := importer.New(importer.Config{SourceFile: "eq.csv", Concurrency: 1, Stop: importer.StopConfig{MaxRetryAfter: maxWait}},
			sender, lim, memoryStore{memstore.New()}, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil || sum.Created != int64(len(emails)) {
			t.Errorf("one 429 with Retry-After = --max-retry-after: Import = created %d, %v; want %d, nil", sum.Created, err, len(emails))
		}
	})
}
