package board

import (
	"sort"
	"testing"
	"time"

	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/require"
)

// lineRate is 115200 baud 8N1 in bytes per second.
const lineRate = 11520.0

// Run with: go test -run '^$' -bench . -benchtime 3x ./harness/board/
// Every benchmark paces the virtual board's serial line at 115200 baud.

func benchUpload(b *testing.B, opts sim.Options, copyOpts CopyOptions, wantPaste bool) {
	opts.LineRate = true
	ctx := testCtx(b)
	_, _, r := startBoard(b, opts, nil)
	require.NoError(b, r.EnterRaw(ctx, true))
	files := firmware.Files()
	names := make([]string, 0, len(files))
	var total int64
	for n, d := range files {
		names = append(names, n)
		total += int64(len(d))
	}
	sort.Strings(names)
	b.SetBytes(total)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, n := range names {
			require.NoError(b, r.WriteFile(ctx, "up_"+n, files[n], copyOpts, nil))
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	require.Equal(b, wantPaste, r.RawPaste())
	rate := float64(total) * float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "file-B/s")
	b.ReportMetric(100*rate/lineRate, "%line")
}

// Our way: 1 KiB literal chunks per exec, raw paste.
func BenchmarkUploadRawPaste(b *testing.B) {
	benchUpload(b, sim.Options{}, DefaultCopy, true)
}

// Our way on firmware without raw paste (256 bytes every 10 ms).
func BenchmarkUploadPlainRaw(b *testing.B) {
	benchUpload(b, sim.Options{NoRawPaste: true}, DefaultCopy, false)
}

// The baseline: mpremote's 256-byte w(b'...') execs, raw paste.
func BenchmarkUploadMpremoteRawPaste(b *testing.B) {
	benchUpload(b, sim.Options{}, MpremoteCopy, true)
}

// The baseline without raw paste.
func BenchmarkUploadMpremotePlainRaw(b *testing.B) {
	benchUpload(b, sim.Options{NoRawPaste: true}, MpremoteCopy, false)
}

// Re-flash of unchanged firmware: enter the raw REPL (with its soft
// reset), hash every file on the board in one exchange, upload nothing.
func BenchmarkReflashUnchanged(b *testing.B) {
	ctx := testCtx(b)
	_, _, r := startBoard(b, sim.Options{LineRate: true}, nil)
	files := firmware.Files()
	files[ConfigPath] = []byte(`{"wifi": {"ssid": "lab", "password": "x"}}`)
	_, err := Sync(ctx, r, files, SyncOptions{})
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Sync(ctx, r, files, SyncOptions{})
		require.NoError(b, err)
		require.Empty(b, res.Uploaded)
	}
}

// The whole re-flash of unchanged firmware: sync, soft reset, and the
// waits for "HIL mqtt up" and the broker's connected event.
func BenchmarkReflashUnchangedWithBoot(b *testing.B) {
	_, cfg, arm := flashRig(b)
	_, _, r := startBoard(b, sim.Options{LineRate: true}, nil)
	flash(b, r, firmware.Files(), cfg, arm, SyncOptions{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, _ := flash(b, r, firmware.Files(), cfg, arm, SyncOptions{})
		require.Empty(b, res.Uploaded)
	}
}
