package data

import "testing"

func BenchmarkLoaderNext(b *testing.B) {
	shards := positionShardsB(b, 1<<20)
	l, err := NewLoader(shards, 8, 1024, 1, 0.01)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]int32, 8*1025)
	b.SetBytes(int64(len(buf)) * 4)
	for b.Loop() {
		l.Next(buf)
	}
}

func BenchmarkShardValidate(b *testing.B) {
	s := positionShardsB(b, 1<<20)[0]
	b.SetBytes(int64(s.Len() * s.Width()))
	for b.Loop() {
		s.validated.Store(false)
		if err := s.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func positionShardsB(b *testing.B, n int) []*Shard {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(i % 50257)
	}
	p := b.TempDir() + "/b.bin"
	if err := WriteShard(p, toks, 50257); err != nil {
		b.Fatal(err)
	}
	s, err := OpenShard(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return []*Shard{s}
}
