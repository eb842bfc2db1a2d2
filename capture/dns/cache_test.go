package dns

import (
	"encoding/binary"
	"testing"
	"time"
)

func addr(i int) [16]byte {
	a := [16]byte{10: 0xff, 11: 0xff}
	binary.BigEndian.PutUint32(a[12:], uint32(i)|10<<24)
	return a
}

const sec = int64(time.Second)

func TestCacheTTL(t *testing.T) {
	c := NewCache()
	now := 1000 * sec
	c.Put(addr(1), []byte("a.example"), 60, now)
	c.Put(addr(2), []byte("b.example"), 0, now)       // the floor: MinTTL
	c.Put(addr(3), []byte("c.example"), 86400, now)   // the cap: MaxTTL
	c.Put(addr(4), []byte("d.example"), 1<<31-1, now) // no overflow
	for _, tc := range []struct {
		addr  int
		since int64
		name  string
	}{
		{1, now - 3600*sec, "a.example"}, // a connection older than the answer
		{1, now + 59*sec, "a.example"},
		{1, now + 60*sec, ""}, // began after the answer expired
		{2, now + int64(MinTTL) - 1, "b.example"},
		{2, now + int64(MinTTL), ""},
		{3, now + int64(MaxTTL) - 1, "c.example"},
		{3, now + int64(MaxTTL), ""},
		{4, now + int64(MaxTTL), ""},
		{5, now, ""}, // never answered
	} {
		name, ok := c.Lookup(addr(tc.addr), tc.since)
		if string(name) != tc.name || ok != (tc.name != "") {
			t.Errorf("address %d, connection from %ds: %q %v, want %q", tc.addr, (tc.since-now)/sec, name, ok, tc.name)
		}
	}
	if c.Len() != 4 {
		t.Errorf("Len %d, want 4", c.Len())
	}
}

func TestCacheRenew(t *testing.T) {
	c := NewCache()
	c.Put(addr(1), []byte("a.example"), 60, 0)
	// The same name again, with less TTL left: kept as long as before.
	c.Put(addr(1), []byte("a.example"), 10, 30*sec)
	if _, ok := c.Lookup(addr(1), 59*sec); !ok {
		t.Error("a repeated answer shortened the name's life")
	}
	// Another name for the address replaces it, from its own answer on.
	c.Put(addr(1), []byte("b.example"), 10, 40*sec)
	if name, _ := c.Lookup(addr(1), 45*sec); string(name) != "b.example" {
		t.Errorf("after a new answer the name is %q", name)
	}
	if _, ok := c.Lookup(addr(1), 50*sec); ok {
		t.Error("the new answer's TTL is not the one kept")
	}
	if c.Len() != 1 {
		t.Errorf("Len %d, want 1", c.Len())
	}
}

// TestCacheBounded: many more addresses than slots keep the cache at its
// size, the newest answers are found, and expired entries make room first.
func TestCacheBounded(t *testing.T) {
	c := NewCache()
	for i := range 10 * CacheSize { // a microsecond apart
		c.Put(addr(i), []byte("n.example"), 60, int64(i)*1000)
	}
	if c.Len() != CacheSize {
		t.Fatalf("Len %d, want %d", c.Len(), CacheSize)
	}
	// The last answers expire last: each evicted an older one.
	for i := 10*CacheSize - 100; i < 10*CacheSize; i++ {
		if _, ok := c.Lookup(addr(i), 0); !ok {
			t.Fatalf("address %d, among the last put, is not found", i)
		}
	}
	// A live entry outlasts expired ones: after the first ones expired,
	// new answers evict them, not the live one.
	c = NewCache()
	c.Put(addr(-1), []byte("live.example"), 3600, 0)
	for i := range 4 * CacheSize { // 8 a second: within the live one's hour
		c.Put(addr(i), []byte("n.example"), 5, int64(i)*sec/8)
	}
	if _, ok := c.Lookup(addr(-1), int64(4*CacheSize)*sec/8); !ok {
		t.Fatal("a live entry was evicted while expired ones were there")
	}
}

func TestCacheAllocs(t *testing.T) {
	c := NewCache()
	name := []byte("web.example")
	if n := testing.AllocsPerRun(100, func() {
		for i := range 100 {
			c.Put(addr(i), name, 60, 0)
			c.Lookup(addr(i), 0)
		}
	}); n != 0 {
		t.Fatalf("Put and Lookup allocate %v times per run", n)
	}
}
