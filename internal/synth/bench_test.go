package synth

import (
	"testing"
	"unsafe"
)

func benchmarkGenerate(b *testing.B, cfg Config) {
	b.ReportAllocs()
	var c *Capture
	for range b.N {
		c = Generate(cfg)
	}
	n := float64(len(c.Frames))
	b.ReportMetric(n*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(n, "frames")
	b.ReportMetric((float64(len(c.Buf))+n*float64(unsafe.Sizeof(Frame{})))/n, "B/frame")
}

func BenchmarkGenerateSmall(b *testing.B) { benchmarkGenerate(b, Small()) }

// BenchmarkGenerateRealistic takes a few seconds per run: use -benchtime 1x.
func BenchmarkGenerateRealistic(b *testing.B) { benchmarkGenerate(b, Realistic()) }
